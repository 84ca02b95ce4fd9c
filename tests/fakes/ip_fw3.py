"""A stand-in for the FreeBSD kernel's IP_FW3 table-entry handler, for the
`sockopt` option of the ipfw driver.

It reads the request with struct offsets taken from the headers, not with
the driver's construct definitions, so that a layout mistake in the driver
shows up as the kernel's refusal. It follows, step by step:
* sys/netpfil/ipfw/ip_fw_sockopt.c ipfw_ctl3: a handler is found by opcode
  and version ({IP_FW_TABLE_XADD|XDEL, 1, manage_table_ent_v1} in
  ip_fw_table.c scodes; 1 is IP_FW3_OPVER_1 on 15); none -> EOPNOTSUPP;
* ip_fw_table.c manage_table_ent_v1: the length checks (ntlv.head.length,
  ctlv length and count, each tentry's head.length), all tentry idx equal
  (else ENOTSUP), ti.uidx = tentry idx, ti.type = ntlv.type;
* find_table_err -> ipfw_find_name_tlv_type (ip_fw_sockopt.c): the name TLV
  whose idx equals ti.uidx and whose type is 0 or IPFW_TLV_TBL_NAME, else
  EINVAL;
* find_ref_table: a missing table -> ESRCH (no compat auto-create for v1
  requests); a table of another type -> EINVAL;
* add_table_entry / del_table_entry: EEXIST for an entry that exists unless
  IPFW_TF_UPDATE, rollback of the whole batch with IPFW_CTF_ATOMIC, ENOENT
  for an entry not found; the IPFW_TR_* result of each entry is written back.

The layouts ("v0": FreeBSD 11-14, "v1": 15 and later) differ only in where
the object indexes are and how wide (sys/netinet/ip_fw.h of each era;
sys/netpfil/ipfw/ip_fw_compat.c keeps the v0 structures).
"""

from __future__ import annotations

import errno
import ipaddress
import struct

IP_FW_TABLE_XADD, IP_FW_TABLE_XDEL = 86, 87
IPFW_TLV_TBL_NAME, IPFW_TABLE_ADDR = 1, 1
IPFW_TF_UPDATE, IPFW_CTF_ATOMIC = 0x01, 0x01
TR_IGNORED, TR_ADDED, TR_UPDATED, TR_DELETED, TR_NOTFOUND, TR_EXISTS = 0, 1, 2, 3, 5, 6
HEADER, CTLV, TENTRY, NTLV = 96, 16, 120, 80
AF_INET, AF_INET6 = 2, 28

# (format, offset) of ntlv.idx and ntlv.type inside the header, and of tentry.idx.
LAYOUTS = {
    "v0": {"ntlv_idx": ("<H", 16 + 8), "ntlv_type": 16 + 11, "tentry_idx": ("<H", 12)},
    "v1": {"ntlv_idx": ("<I", 16 + 8), "ntlv_type": 16 + 13, "tentry_idx": ("<I", 12)},
}


class IpFw3Kernel:
    """Called with the request buffer; returns the errno (0) and writes results in place."""

    def __init__(self, layout: str, tables: dict[str, set[str]] | None = None) -> None:
        self.offsets = LAYOUTS[layout]
        self.tables: dict[str, set[str]] = {} if tables is None else tables
        self.requests: list[bytes] = []

    def __call__(self, request: bytearray) -> int:
        self.requests.append(bytes(request))
        opcode, version = struct.unpack_from("<HH", request, 0)
        if opcode not in (IP_FW_TABLE_XADD, IP_FW_TABLE_XDEL) or version != 1:
            return errno.EOPNOTSUPP
        size = len(request)
        if size < HEADER + CTLV:
            return errno.EINVAL
        ntlv_type_tlv, ntlv_length = struct.unpack_from("<H2xI", request, 16)
        if ntlv_length != NTLV:
            return errno.EINVAL
        ctlv_length, count = struct.unpack_from("<4xII", request, HEADER)
        flags = request[HEADER + 15]
        if ctlv_length + HEADER != size or count * TENTRY + HEADER + CTLV != size:
            return errno.EINVAL
        if count == 0:
            return 0
        entries = [HEADER + CTLV + i * TENTRY for i in range(count)]
        fmt, offset = self.offsets["tentry_idx"]
        kidx = struct.unpack_from(fmt, request, entries[0] + offset)[0]
        for start in entries:
            if struct.unpack_from("<I", request, start + 4)[0] != TENTRY:
                return errno.EINVAL
            if struct.unpack_from(fmt, request, start + offset)[0] != kidx:
                return errno.ENOTSUP
        fmt, offset = self.offsets["ntlv_idx"]
        if struct.unpack_from(fmt, request, offset)[0] != kidx \
                or ntlv_type_tlv not in (0, IPFW_TLV_TBL_NAME):
            return errno.EINVAL                          # ipfw_find_name_tlv_type: NULL
        name = bytes(request[16 + 16:16 + 80]).split(b"\0", 1)[0].decode()
        if name not in self.tables:
            return errno.ESRCH
        if request[self.offsets["ntlv_type"]] != IPFW_TABLE_ADDR:
            return errno.EINVAL                          # tc->no.subtype != ti->type
        return self._modify(request, entries, self.tables[name], opcode == IP_FW_TABLE_XADD,
                            atomic=bool(flags & IPFW_CTF_ATOMIC))

    @staticmethod
    def _key(request: bytearray, start: int) -> str:
        subtype, masklen = request[start + 8], request[start + 9]
        raw = bytes(request[start + 16:start + 16 + (4 if subtype == AF_INET else 16)])
        return f"{ipaddress.ip_address(raw)}/{masklen}"

    def _modify(self, request: bytearray, entries: list[int], table: set[str], add: bool,
                atomic: bool) -> int:
        work, results, first = set(table), [], 0
        for start in entries:
            key, update = self._key(request, start), request[start + 2] & IPFW_TF_UPDATE
            if add and key in work:
                result, error = (TR_UPDATED, 0) if update else (TR_EXISTS, errno.EEXIST)
            elif add:
                work.add(key)
                result, error = TR_ADDED, 0
            elif key in work:
                work.discard(key)
                result, error = TR_DELETED, 0
            else:
                result, error = TR_NOTFOUND, errno.ENOENT
            results.append(result)
            first = first or error
            if error and add and atomic:                  # rollback_added_entries
                results += [TR_IGNORED] * (len(entries) - len(results))
                break
        else:
            table.clear()
            table.update(work)
        for start, result in zip(entries, results):
            request[start + 10] = result
        return first
