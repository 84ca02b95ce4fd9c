"""Kernel structures of the BSD firewalls, as `construct` definitions.

The per-address structures (pf's struct pfr_addr, ipfw's ipfw_obj_tentry),
built and read once for every address of a table, are `struct` formats
instead: construct spends about 100 us on each, so a table of 70,000
addresses took seven seconds of CPU to synchronise.

Rules of this file:
* It only turns values into bytes and bytes into values: no files, no
  ioctl, no sockets. The pf and ipfw drivers do the I/O; the tests hold
  every layout to golden bytes derived by hand from the headers.
* Every layout is LP64 (amd64, arm64, powerpc64), in the byte order asked
  for (the drivers ask for the host's). 32-bit kernels, whose pointers are
  4 bytes, are not supported.
* It also owns the text form of a target (address or prefix), because the
  structures encode exactly that: `network()` parses the daemon's text,
  `canonical()` prints what a table holds the way the daemon writes it
  (a host without /32 or /128, a prefix with it).

Sources the layouts were derived from (read, never copied):
* FreeBSD sys/net/pfvar.h (`struct pfr_table`, `struct pfr_addr`,
  `struct pfioc_table`, `DIOCR*`; identical in 13.0 and in main at
  186c9554bad7, 2025), sys/sys/ioccom.h (`_IOWR`), sys/sys/socket.h
  (AF_INET6 = 28), sys/netinet/ip_fw.h (IP_FW3 objects, both layouts below).
* OpenBSD sys/net/pfvar.h 1.543 (the 52-byte `struct pfr_addr` with
  interface name, states, weight and type), sys/sys/ioccom.h,
  sys/sys/socket.h (AF_INET6 = 24).

pf (both systems; MAXPATHLEN = PATH_MAX = 1024, PF_TABLE_NAME_SIZE = 32):

    struct pfr_table   offset size
      pfrt_anchor[1024]     0 1024
      pfrt_name[32]      1024   32
      pfrt_flags (u32)   1056    4
      pfrt_fback (u8)    1060    1   + 3 bytes of padding = 1064

    struct pfr_addr (FreeBSD)          struct pfr_addr (OpenBSD)
      pfra_u (in/in6_addr)  0 16         pfra_u             0 16
      pfra_af               16 1         pfra_ifname[16]   16 16
      pfra_net              17 1         pfra_states (u32) 32  4
      pfra_not              18 1         pfra_weight (u16) 36  2
      pfra_fback            19 1 = 20    pfra_af, _net,    38  5
                                         _not, _fback, _type
                                         pad[7]            43  7
                                         + 2 bytes of tail padding = 52

    struct pfioc_table (LP64, the same on both)
      pfrio_table        0 1064
      pfrio_buffer    1064    8   (a pointer: the address of the array)
      pfrio_esize     1072    4   then size, size2, nadd, ndel,
      ...                          nchange, flags (int), ticket (u32)
                                  = 1104

    _IOWR('D', n, struct pfioc_table)
      = IOC_INOUT (0xC0000000) | (1104 & 0x1fff) << 16 | 'D' << 8 | n
      = 0xC4504400 | n        on FreeBSD and OpenBSD alike.

ipfw (FreeBSD 11 and later), the IP_FW3 request of `ipfw table T add|delete`:
getsockopt(raw socket, IPPROTO_IP, IP_FW3 = 48, buffer, &length). Two
layouts exist, both sent with ip_fw3_opheader.version 1 (sbin/ipfw/tables.c
table_do_modify_record), so the kernel cannot tell them apart: the driver
picks one by kern.osreldate (ipfw3_layout_for).

    "v0", FreeBSD 11.0 to 14.x (16-bit object indexes; sys/netinet/ip_fw.h
    up to 2024, and the *_v0 structures kept in sys/netpfil/ipfw/
    ip_fw_compat.c of 2025):

    ipfw_obj_header                     0   96
      ip_fw3_opheader: opcode u16 (86 XADD, 87 XDEL), version u16 (1),
                       reserved u16[2]                      0..7
      spare u32, idx u16 (1), objtype u8, objsubtype u8     8..15
      ipfw_obj_ntlv: tlv {type u16 (1, TBL_NAME), flags u16,
                     length u32 (80)}, idx u16 (1), set u8,
                     type u8 (1, IPFW_TABLE_ADDR), spare u32,
                     name[64]                              16..95
    ipfw_obj_ctlv: tlv {type 8 (TBLENT_LIST), flags, length
                   = 16 + 120 N}, count u32, objsize u16,
                   version u8, flags u8 (1 = IPFW_CTF_ATOMIC) 96..111
    N x ipfw_obj_tentry (120 bytes each):
      tlv {type 5 (TBL_ENT), flags (1 = IPFW_TF_UPDATE),
           length 120}                                  0..7
      subtype u8 (AF_INET 2, AF_INET6 28), masklen u8,
      result u8 (written back), spare0, idx u16 (1), spare1  8..15
      k: union of in_addr, in6_addr, iface[16], tflow_entry
         (40 bytes, the largest)                        16..55
      v: ipfw_table_value (64 bytes; 0 = the legacy value 0
         in every field)                                56..119

    "v1", FreeBSD 15.0 and later (IP_FW3_OPVER_1, 32-bit rule numbers and
    object indexes; sys/netinet/ip_fw.h of 2025): the same sizes, but
      ipfw_obj_header: idx u32 @8, spare u16 @12, objtype @14, subtype @15
      ipfw_obj_ntlv:   idx u32 @+8, set @+12, type @+13, spare u16 @+14
      ipfw_obj_tentry: idx u32 @12 (no spare1)
    and a re-laid ipfw_table_value (still 64 bytes, still all zero here).
    A v0 request read as v1 has ntlv.idx 0x01000001 and ntlv.type 0, so
    find_table_err() finds no name TLV and the kernel answers EINVAL.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, Literal

from construct import (  # type: ignore[import-untyped]
    Default, Int8ul, Int16ub, Int16ul, Int32sb, Int32sl, Int32ub, Int32ul, Int64ub, Int64ul,
    Padding, PaddedString, Struct)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
System = Literal["freebsd", "openbsd"]
ByteOrder = Literal["little", "big"]

SYSTEMS: tuple[System, ...] = ("freebsd", "openbsd")

AF_INET = 2
AF_INET6: dict[System, int] = {"freebsd": 28, "openbsd": 24}

MAXPATHLEN = 1024            # pfrt_anchor, both systems
PF_TABLE_NAME_SIZE = 32      # pfrt_name, both systems
IFNAMSIZ = 16                # OpenBSD pfra_ifname

PFR_TFLAG_PERSIST = 0x00000001

# ioccom.h, identical on both systems.
IOC_INOUT = 0x40000000 | 0x80000000
IOCPARM_MASK = 0x1FFF

# pfvar.h: the table ioctls syslogban uses, by their number n in _IOWR('D', n, ...).
DIOC_NUMBERS = {
    "DIOCRADDTABLES": 61,
    "DIOCRCLRADDRS": 66,
    "DIOCRADDADDRS": 67,
    "DIOCRDELADDRS": 68,
    "DIOCRSETADDRS": 69,
    "DIOCRGETADDRS": 70,
}


def network(target: str) -> Network:
    """The address or prefix `target` ("192.0.2.1", "2001:db8::/64"); ValueError
    when it is neither, or when a prefix has host bits set."""
    return ipaddress.ip_network(target, strict=True)


def canonical(net: Network) -> str:
    """The daemon's text for `net`: a host without its /32 or /128."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def sort_key(net: Network) -> tuple[int, int, int]:
    """Orders targets the same way on every run: IPv4 first, then by address."""
    return (net.version, int(net.network_address), net.prefixlen)


def ioc_iowr(group: str, number: int, size: int) -> int:
    """_IOWR(group, number, type) of BSD sys/sys/ioccom.h for a type of `size` bytes."""
    return IOC_INOUT | ((size & IOCPARM_MASK) << 16) | (ord(group) << 8) | number


def _ints(byteorder: ByteOrder) -> tuple[Any, Any, Any, Any, Any]:
    """The (u8, u16, u32, s32, u64) constructs of `byteorder`."""
    if byteorder == "little":
        return Int8ul, Int16ul, Int32ul, Int32sl, Int64ul
    return Int8ul, Int16ub, Int32ub, Int32sb, Int64ub


@dataclass(frozen=True, slots=True)
class PfLayout:
    """The pf table structures of one system in one byte order."""

    system: System
    af_inet6: int
    pfr_table: Any
    pfr_addr: struct.Struct  # fixed fields only: `struct`, a thousand times faster than construct
    pfioc_table: Any

    @property
    def addr_size(self) -> int:
        return self.pfr_addr.size

    @property
    def table_size(self) -> int:
        return int(self.pfr_table.sizeof())

    @property
    def ioc_size(self) -> int:
        return int(self.pfioc_table.sizeof())

    def ioctl(self, name: str) -> int:
        """The request number of DIOCR<name> for this layout's pfioc_table."""
        return ioc_iowr("D", DIOC_NUMBERS[name], self.ioc_size)

    def table(self, name: str, anchor: str = "", flags: int = 0) -> bytes:
        """struct pfr_table for table `name` in `anchor` ("" for the main ruleset)."""
        return bytes(self.pfr_table.build({"anchor": anchor, "name": name, "flags": flags,
                                           "fback": 0}))

    def addr(self, net: Network) -> bytes:
        """struct pfr_addr for a host or prefix (pfra_not, pfra_fback and, on
        OpenBSD, the interface, states, weight and type all zero)."""
        af = AF_INET if net.version == 4 else self.af_inet6
        return self.pfr_addr.pack(net.network_address.packed.ljust(16, b"\0"), af,
                                  net.prefixlen, 0)

    def addrs(self, nets: list[Network]) -> bytes:
        """An array of struct pfr_addr, in the order given."""
        return b"".join(self.addr(net) for net in nets)

    def parse_addrs(self, data: bytes, count: int) -> list[Network]:
        """The positive (not negated) entries of an array of `count` struct pfr_addr."""
        nets = []
        for raw, af, net, negated in self.pfr_addr.iter_unpack(data[:count * self.addr_size]):
            if negated:
                continue
            if af == AF_INET:
                raw = raw[:4]
            elif af != self.af_inet6:
                raise ValueError(f"pfr_addr with unknown address family {af}")
            nets.append(ipaddress.ip_network((raw, net)))
        return nets

    def ioc(self, name: str = "", anchor: str = "", buffer: int = 0, esize: int = 0,
            size: int = 0) -> bytearray:
        """struct pfioc_table for table `name` in `anchor`, pointing at `buffer`
        (the address of `size` elements of `esize` bytes)."""
        return bytearray(self.pfioc_table.build({
            "table": {"anchor": anchor, "name": name, "flags": 0, "fback": 0},
            "buffer": buffer, "esize": esize, "size": size, "size2": 0, "nadd": 0,
            "ndel": 0, "nchange": 0, "flags": 0, "ticket": 0}))

    def parse_ioc(self, data: bytes | bytearray) -> Any:
        return self.pfioc_table.parse(bytes(data))


def pf_layout(system: System, byteorder: ByteOrder = "little") -> PfLayout:
    """The pf structures of `system` ("freebsd" or "openbsd")."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r} (one of: {', '.join(SYSTEMS)})")
    u8, u16, u32, s32, u64 = _ints(byteorder)
    pfr_table = Struct(
        "anchor" / PaddedString(MAXPATHLEN, "ascii"),
        "name" / PaddedString(PF_TABLE_NAME_SIZE, "ascii"),
        "flags" / u32,
        "fback" / u8,
        Padding(3),
    )
    # struct pfr_addr as (addr, af, net, not): the fields syslogban sets or
    # reads; those it leaves zero are padding to `struct` (the layouts above).
    order = "<" if byteorder == "little" else ">"
    if system == "freebsd":
        pfr_addr = struct.Struct(f"{order}16sBBBx")        # addr, af, net, not, fback
    else:  # addr, ifname[IFNAMSIZ], states, weight, af, net, not, fback, type, pad[7], tail
        pfr_addr = struct.Struct(f"{order}16s{IFNAMSIZ}x4x2xBBBxx7x2x")
    pfioc_table = Struct(
        "table" / pfr_table,
        "buffer" / u64,
        "esize" / s32,
        "size" / s32,
        "size2" / s32,
        "nadd" / s32,
        "ndel" / s32,
        "nchange" / s32,
        "flags" / s32,
        "ticket" / u32,
    )
    return PfLayout(system, AF_INET6[system], pfr_table, pfr_addr, pfioc_table)



# ipfw, FreeBSD sys/netinet/in.h and sys/netinet/ip_fw.h.
IPPROTO_IP = 0
IP_FW3 = 48
IP_FW_TABLE_XADD = 86
IP_FW_TABLE_XDEL = 87
IPFW_TLV_TBL_NAME = 1
IPFW_TLV_TBL_ENT = 5
IPFW_TLV_TBLENT_LIST = 8
IPFW_TABLE_ADDR = 1
IPFW_TF_UPDATE = 0x01
IPFW_CTF_ATOMIC = 0x01
IPFW_TR_NAMES = ("ignored", "added", "updated", "deleted", "limit", "not found", "exists",
                 "error")
IPFW_NAME_SIZE = 64


# kern.osreldate ranges of the two layouts: FreeBSD 11.0 brought named tables
# and IP_FW3 table TLVs; 15.0 brought IP_FW3_OPVER_1 (commit 4a77657cbc01,
# "ipfw: migrate ipfw to 32-bit size rule numbers"; RELENG_15 kernels refuse
# the old layout, which is why 14.4 ships /sbin/ipfw15, commit 969e2b406835).
IPFW3_LAYOUTS = {"v0": (1100000, 1500000), "v1": (1500000, 1600000)}


def ipfw3_layout_for(osreldate: int | None) -> str:
    """The IP_FW3 table layout ("v0", "v1") of a FreeBSD kernel with this
    kern.osreldate; ValueError saying why when no known layout fits."""
    if osreldate is None:
        raise ValueError("kern.osreldate cannot be read, so this is not a FreeBSD kernel")
    for name, (low, high) in IPFW3_LAYOUTS.items():
        if low <= osreldate < high:
            return name
    raise ValueError(f"kern.osreldate {osreldate}: the IP_FW3 table layout of this FreeBSD "
                     f"is not known here (known: 11.0 to 15.x)")


@dataclass(frozen=True, slots=True)
class Ipfw3Layout:
    """The IP_FW3 table-entry request (ipfw_obj_header, ctlv, tentries) of one layout."""

    name: str
    header: Any
    ctlv: Any
    tentry: struct.Struct  # one per address: `struct`, a thousand times faster than construct

    @property
    def entry_size(self) -> int:
        return self.tentry.size

    def request(self, opcode: int, table: str, nets: list[Network],
                atomic: bool = False) -> bytearray:
        """The buffer of IP_FW_TABLE_XADD or _XDEL for `nets` in table `table`;
        additions update an entry that exists (as `ipfw -q` does)."""
        header = self.header.build({
            "opcode": opcode, "version": 1, "idx": 1,
            "ntlv": {"type": IPFW_TLV_TBL_NAME, "length": 80, "idx": 1,
                     "objtype": IPFW_TABLE_ADDR, "name": table}})
        ctlv = self.ctlv.build({"type": IPFW_TLV_TBLENT_LIST,
                                "length": self.ctlv.sizeof() + self.entry_size * len(nets),
                                "count": len(nets), "objsize": self.entry_size,
                                "flags": IPFW_CTF_ATOMIC if atomic else 0})
        flags = IPFW_TF_UPDATE if opcode == IP_FW_TABLE_XADD else 0
        pack, size = self.tentry.pack, self.entry_size
        entries = b"".join(pack(IPFW_TLV_TBL_ENT, flags, size,
                                AF_INET if net.version == 4 else AF_INET6["freebsd"],
                                net.prefixlen, 0, 1, net.network_address.packed.ljust(40, b"\0"))
                           for net in nets)
        return bytearray(header + ctlv + entries)

    def results(self, data: bytes | bytearray, count: int) -> list[int]:
        """The IPFW_TR_* result the kernel wrote into each of `count` entries."""
        start = int(self.header.sizeof() + self.ctlv.sizeof())
        entries = bytes(data[start:start + count * self.entry_size])
        return [entry[5] for entry in self.tentry.iter_unpack(entries)]


def ipfw3_layout(name: str = "v0", byteorder: ByteOrder = "little") -> Ipfw3Layout:
    """The IP_FW3 structures of layout `name` ("v0": FreeBSD 11-14, "v1": 15)."""
    if name not in IPFW3_LAYOUTS:
        raise ValueError(f"unknown IP_FW3 layout {name!r} (one of: {', '.join(IPFW3_LAYOUTS)})")
    u8, u16, u32, _, _ = _ints(byteorder)
    tlv = ("type" / u16, "tlv_flags" / Default(u16, 0), "length" / u32)   # ipfw_obj_tlv
    opheader = ("opcode" / u16, "version" / u16, Padding(4))             # ip_fw3_opheader
    name_tlv = ("name" / PaddedString(IPFW_NAME_SIZE, "ascii"),)
    if name == "v0":
        header = Struct(
            *opheader, Padding(4), "idx" / u16, Padding(2),             # spare, idx, types
            "ntlv" / Struct(*tlv, "idx" / u16, "set" / Default(u8, 0), "objtype" / u8,
                            Padding(4), *name_tlv))
    else:
        header = Struct(
            *opheader, "idx" / u32, Padding(4),                          # idx, spare, types
            "ntlv" / Struct(*tlv, "idx" / u32, "set" / Default(u8, 0), "objtype" / u8,
                            Padding(2), *name_tlv))
    ctlv = Struct(*tlv, "count" / u32, "objsize" / u16, "version" / Default(u8, 0),
                  "flags" / u8)
    # ipfw_obj_tentry: the TLV (type, flags, length), subtype, masklen, result,
    # spare0, the index (v0: idx and spare1, v1: idx), union k (40 bytes, the
    # address) and union v (64 bytes, left zero).
    order = "<" if byteorder == "little" else ">"
    tentry = struct.Struct(f"{order}HHIBBBx{'H2x' if name == 'v0' else 'I'}40s64x")
    return Ipfw3Layout(name, header, ctlv, tentry)
