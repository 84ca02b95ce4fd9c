"""The fleet end to end: three `syslogban run` daemons in three network
namespaces with nftables, fed through their pipes, sharing a private
PostgreSQL 15 (its unix socket is reachable from every namespace). What each
kernel holds is what the test checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres import OWNER_PASSWORD, Cluster, requires_postgres

import netns
from netns import requires_netns, run_in
from syslogban.fleet.admin import init
from test_daemon import Daemon, attack_lines, daemons, start  # noqa: F401 (fixture)

pytestmark = [requires_netns, requires_postgres]


def kernel(ns: str) -> set[str]:
    """The addresses in syslogban's IPv4 host set, as the kernel holds them."""
    return run_in(ns, _elements)


def _elements() -> set[str]:
    """Read with libnftables (python3-nftables) inside the namespace: no nft command."""
    import nftables
    nft = nftables.Nftables()
    nft.set_json_output(True)
    rc, output, _ = nft.cmd("list set inet syslogban hosts4")
    if rc != 0:  # the table is not there (yet)
        return set()
    return {elem["elem"]["val"] if isinstance(elem, dict) else elem
            for item in json.loads(output)["nftables"]
            for elem in item.get("set", {}).get("elem", [])}


class Fleet:
    """A private PostgreSQL with the schema, and the hosts started on it."""

    def __init__(self, tmp: Path, started: list[Daemon]) -> None:
        self.tmp = tmp
        self.started = started
        self.db = Cluster()
        self.database = self.db.new_database()
        init(self.db.dsn("syslogban", OWNER_PASSWORD, self.database))
        self.namespaces: dict[str, str] = {}

    def host(self, role: str, *args: str, unblock: bool = False, name: str | None = None,
             login: str | None = None) -> Daemon:
        """`syslogban run` as `role` in a namespace of its own (logging in as
        `login`, another host's role, for the forgery test)."""
        password = self.db.add_host(login or role, unblock=unblock)
        ns = self.namespaces.setdefault(role, netns.create())
        home = self.tmp / role
        home.mkdir(exist_ok=True)
        dsn = self.db.dsn(login or role, password, self.database)
        return start(self.started, home, "--fleet", f"dsn={dsn}", "--fleet",
                     f"name={name or role}", "--block-time", "1h", *args,
                     backend="nftables", wrap=("ip", "netns", "exec", ns))

    def kernel(self, role: str) -> set[str]:
        return kernel(self.namespaces[role])

    def close(self) -> None:
        for d in self.started:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        for ns in self.namespaces.values():
            netns.delete(ns)
        self.db.destroy()


@pytest.fixture()
def fleet(tmp_path: Path, daemons: list[Daemon]) -> Iterator[Fleet]:  # noqa: F811
    f = Fleet(tmp_path, daemons)
    try:
        yield f
    finally:
        f.close()


def test_blocks_spread_sprays_are_blocked_and_unblocks_act_everywhere(fleet: Fleet) -> None:
    mx1, mx2 = fleet.host("mx1"), fleet.host("mx2", unblock=True)
    mx3 = fleet.host("mx3", "--allow", "198.51.100.0/24")
    mx1.send(attack_lines("192.0.2.1"))  # a block spreads
    for role, d in (("mx1", mx1), ("mx2", mx2), ("mx3", mx3)):
        d.wait_for(lambda role=role: "192.0.2.1" in fleet.kernel(role), f"the block on {role}")
    why = mx3.ctl("why", "192.0.2.1").stdout
    assert "fleet:mx1" in why and "mx1: " in why
    for d in (mx1, mx2, mx3):  # a slow spray: one attempt on each host
        d.send(attack_lines("192.0.2.2", count=1))
    for role, d in (("mx1", mx1), ("mx2", mx2), ("mx3", mx3)):
        d.wait_for(lambda role=role: "192.0.2.2" in fleet.kernel(role), f"the spray on {role}")
    mx1.send(attack_lines("198.51.100.5"))  # allow-listed on mx3 only
    mx2.wait_for(lambda: "198.51.100.5" in fleet.kernel("mx2"), "the block on mx2")
    mx3.wait_for(lambda: "refused a decision from fleet:mx1: 198.51.100.5 is allow-listed"
                 in mx3.log.read_text(), "the refusal on mx3")
    assert "198.51.100.5" not in fleet.kernel("mx3")
    refused = mx1.ctl("unblock", "192.0.2.2")  # mx1 may not: the answer says so
    assert (refused.returncode, refused.stdout) == (0, (
        "unblocked 192.0.2.2\nfleet: not lifted on the other hosts: this host's role may "
        "not unblock fleet-wide (grant it syslogban_unblock)\n")), refused
    lifted = mx2.ctl("unblock", "192.0.2.1")  # mx2 may unblock everywhere
    assert lifted.stdout == "unblocked 192.0.2.1\nfleet: lifted on every host\n", lifted
    for role, d in (("mx1", mx1), ("mx3", mx3)):
        d.wait_for(lambda role=role: "192.0.2.1" not in fleet.kernel(role),
                   f"the unblock on {role}")
    mx4 = fleet.host("mx4")  # a new host gets every block in force
    mx4.wait_for(lambda: {"192.0.2.2", "198.51.100.5"} <= fleet.kernel("mx4"), "the full sync")
    assert "192.0.2.1" not in fleet.kernel("mx4")


def test_the_database_away_local_blocking_goes_on_and_nothing_is_lost(fleet: Fleet) -> None:
    mx1, mx2 = fleet.host("mx1"), fleet.host("mx2")
    mx1.send(attack_lines("192.0.2.1"))
    mx2.wait_for(lambda: "192.0.2.1" in fleet.kernel("mx2"), "the first block")
    fleet.db.stop()
    for n in range(2, 22):
        mx1.send(attack_lines(f"192.0.2.{n}"))
    wanted = {f"192.0.2.{n}" for n in range(1, 22)}
    mx1.wait_for(lambda: wanted <= fleet.kernel("mx1"), "local blocking without the database")
    assert "local blocking goes on" in mx1.log.read_text()
    fleet.db.start()
    mx2.wait_for(lambda: wanted <= fleet.kernel("mx2"), "the catch-up", timeout=60)
    events = fleet.db.sql("SELECT count(*) FROM syslogban.events WHERE host = 'mx1'",
                          database=fleet.database)
    assert events == str(3 * 21)


def test_a_host_naming_itself_another_is_refused(fleet: Fleet) -> None:
    rogue = fleet.host("mx9", name="mx2", login="mx1")
    rogue.send(attack_lines("192.0.2.7"))
    rogue.wait_for(lambda: "the database knows this host as 'mx1', not 'mx2'"
                   in rogue.log.read_text(), "the refusal")
    rogue.wait_for(lambda: "192.0.2.7" in fleet.kernel("mx9"), "local blocking all the same")
    assert fleet.db.sql("SELECT count(*) FROM syslogban.events",
                        database=fleet.database) == "0"


def failed_login(address: str, pid: int) -> bytes:
    """One failed SMTP AUTH as Postfix writes it: three lines of one smtpd
    process (the attempt, a corroborating line, the session's count)."""
    head = f"Nov 21 10:00:01 mx postfix/smtpd[{pid}]:"
    return (f"{head} warning: unknown[{address}]: SASL LOGIN authentication failed: "
            f"UGFzc3dvcmQ6\n{head} lost connection after AUTH from unknown[{address}]\n"
            f"{head} disconnect from unknown[{address}] ehlo=1 auth=0/1 quit=1 "
            "commands=2/3\n").encode()


def test_a_slow_spray_of_n_failed_logins_blocks_at_the_nth_everywhere(fleet: Fleet) -> None:
    """attempts = 4: four failed logins (twelve lines) spread over three hosts
    block at the fourth login, fleet-wide; each host sends one event per login."""
    hosts = {role: fleet.host(role, "--attempts", "4") for role in ("mx1", "mx2", "mx3")}
    address = "192.0.2.44"

    def fleet_sql(query: str) -> str:
        return fleet.db.sql(query, database=fleet.database)
    for n, role in enumerate(("mx1", "mx2", "mx3", "mx1"), start=1):
        hosts[role].send(failed_login(address, 4000 + n))
        hosts[role].wait_for(lambda n=n: fleet_sql(
            "SELECT count(*), coalesce(sum(attempts), 0) FROM syslogban.events") == f"{n}|{n}",
            f"failed login {n} in the database, one event")
        if n < 4:
            assert fleet_sql("SELECT count(*) FROM syslogban.decisions") == "0", \
                f"blocked at failed login {n} of 4"
    for role, d in hosts.items():
        d.wait_for(lambda role=role: address in fleet.kernel(role), f"the block on {role}")
    assert fleet_sql("SELECT count(*), min(reason), min(score) FROM syslogban.decisions") \
        == "1|score|4"
