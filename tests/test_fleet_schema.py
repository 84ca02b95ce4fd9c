"""The fleet's schema in a real PostgreSQL 15: migrations, roles, grants, one
winner per address, the decision log's order, TLS with client certificates."""

from __future__ import annotations

import select
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import psycopg
import pytest
from postgres import OWNER_PASSWORD, ROOT, Cluster, cluster, database, requires_postgres  # noqa: F401

from syslogban.fleet import schema
from syslogban.fleet.admin import FleetError, init, status

pytestmark = requires_postgres
SYSLOGBAN = [sys.executable, "-m", "syslogban"]
NOW = datetime.now(timezone.utc)


def connect(cluster: Cluster, database: str, role: str, unblock: bool = False) -> psycopg.Connection:
    password = cluster.add_host(role, unblock=unblock)
    return psycopg.connect(cluster.dsn(role, password, database), autocommit=True)


def observe(conn: psycopg.Connection, seqs: list[int], addr: str = "192.0.2.7",
            danger: int = 10) -> int:
    rows = "\n".join(f"{seq}\t{addr}\tpostfix.sasl\tpostfix\t{danger}\t{NOW.timestamp()}"
                     for seq in seqs)
    return conn.execute("SELECT syslogban.observe(%s, 0)",  # type: ignore[no-any-return, index]
                        (rows,)).fetchone()[0]


def decide(conn: psycopg.Connection, target: str) -> tuple[int | None, str | None]:
    return conn.execute(  # type: ignore[return-value]
        "SELECT * FROM syslogban.decide(%s, now(), now() + interval '1 hour', 'score', 30,"
        " '{postfix.sasl}', 1, 30, '{}')", (target,)).fetchone()


def join(threads: list[threading.Thread], what: str, timeout: float = 60) -> None:
    """Every thread ended within `timeout`, or a failure naming `what` (never a hang:
    the threads are daemons)."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"{what}: still running after {timeout} s"


def test_init_creates_then_changes_nothing(cluster: Cluster) -> None:
    name = cluster.new_database()
    dsn = cluster.dsn("syslogban", OWNER_PASSWORD, name)
    result = subprocess.run([*SYSLOGBAN, "fleet", "init", "--dsn", dsn], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"fleet schema migrated from version 0 to {len(schema.MIGRATIONS)}"
    assert init(dsn) == f"fleet schema is up to date (version {len(schema.MIGRATIONS)})"
    assert status(dsn)["version"] == len(schema.MIGRATIONS)


def test_two_inits_at_once_do_the_work_once(cluster: Cluster) -> None:
    dsn = cluster.dsn("syslogban", OWNER_PASSWORD, cluster.new_database())
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(init(dsn)), daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    join(threads, "three inits at once")
    assert sum("migrated" in r for r in results) == 1


def test_init_and_status_say_what_is_wrong_in_one_line(cluster: Cluster) -> None:
    bad = cluster.dsn("syslogban", "wrong", "postgres")
    result = subprocess.run([*SYSLOGBAN, "fleet", "init", "--dsn", bad], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("syslogban: error: fleet database: ")
    assert "password authentication failed" in result.stderr and "Traceback" not in result.stderr
    empty = cluster.dsn("syslogban", OWNER_PASSWORD, cluster.new_database())
    with pytest.raises(FleetError, match="run `syslogban fleet init`"):
        status(empty)


def test_events_carry_the_session_role_and_never_another(cluster: Cluster, database: str) -> None:
    mx1 = connect(cluster, database, "mx1")
    assert observe(mx1, [1, 2]) == 2
    assert observe(mx1, [2, 3]) == 1  # (host, seq) is idempotent
    rows = mx1.execute("SELECT host, seq FROM syslogban.events ORDER BY seq").fetchall()
    assert rows == [("mx1", 1), ("mx1", 2), ("mx1", 3)]
    for forged in ("INSERT INTO syslogban.events VALUES ('mx2', 9, '192.0.2.7', 'x', 'y', 10, now())",
                   "UPDATE syslogban.events SET host = 'mx2'",
                   "INSERT INTO syslogban.decisions (target, origin, reason) "
                   "VALUES ('192.0.2.7', 'mx2', 'manual')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mx1.execute(forged)
    lifetime = mx1.execute("SELECT lifetime FROM syslogban.offenders").fetchone()
    assert lifetime == (30,)
    hosts = status(cluster.dsn("syslogban", OWNER_PASSWORD, database))["hosts"]
    assert [(h["name"], h["last_seq"]) for h in hosts] == [("mx1", 3)]


def test_one_winner_per_address_and_a_prefix_covers_its_addresses(
        cluster: Cluster, database: str) -> None:
    mx1, mx2 = connect(cluster, database, "mx1"), connect(cluster, database, "mx2")
    first = decide(mx1, "192.0.2.7")
    assert first[0] is not None and first[1] is None
    assert decide(mx2, "192.0.2.7") == (None, "already blocked")
    assert decide(mx2, "192.0.2.0/24")[0] is not None  # a prefix is another target
    assert decide(mx1, "192.0.2.8") == (None, "already blocked")  # covered by the prefix
    origins = mx1.execute("SELECT target::text, origin FROM syslogban.active ORDER BY id")
    assert origins.fetchall() == [("192.0.2.7/32", "mx1"), ("192.0.2.0/24", "mx2")]


def test_concurrent_deciders_make_exactly_one_decision(cluster: Cluster, database: str) -> None:
    hosts = [connect(cluster, database, f"mx{n}") for n in range(1, 4)]
    for conn in hosts:
        conn.autocommit = False
    won: list[object] = []
    barrier = threading.Barrier(len(hosts), timeout=30)

    def race(conn: psycopg.Connection) -> None:
        barrier.wait()
        with conn.transaction():  # decide() alone: it holds the target's row itself
            won.append(decide(conn, "198.51.100.9")[0])
    threads = [threading.Thread(target=race, args=(c,), daemon=True) for c in hosts]
    for t in threads:
        t.start()
    join(threads, "three deciders at once")
    assert sum(w is not None for w in won) == 1


def test_a_populated_database_of_version_4_migrates_and_keeps_its_decisions(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 5 moves where each target stands out of the log (`standing`) and
    the lifetime attempts into `offenders`: the blocks in force, the earlier
    blocks (escalation), the unblocks and the attempts of a fleet that ran on
    version 4 are all there after `fleet init`, and decisions go on from them."""
    database = cluster.new_database()
    dsn = cluster.dsn("syslogban", OWNER_PASSWORD, database)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
    assert init(dsn) == "fleet schema migrated from version 0 to 4"
    monkeypatch.undo()
    mx1 = connect(cluster, database, "mx1", unblock=True)
    assert observe(mx1, [1, 2, 3]) == 3
    decide(mx1, "192.0.2.7")                         # in force
    decide(mx1, "192.0.2.8")
    mx1.execute("SELECT syslogban.revoke('192.0.2.8')")  # lifted
    mx1.execute("SELECT * FROM syslogban.decide('192.0.2.9', now() - interval '2 hours',"
                " now() - interval '1 hour', 'score', 30, '{postfix.sasl}', 1, 30, '{}')")
    assert init(dsn) == f"fleet schema migrated from version 4 to {len(schema.MIGRATIONS)}"
    with psycopg.connect(dsn, autocommit=True) as owner:
        standing = owner.execute("SELECT host(target), blocks, quiet_until > now()"
                                 " FROM syslogban.standing ORDER BY target").fetchall()
        offenders = owner.execute("SELECT lifetime, attempts FROM syslogban.offenders")
        assert offenders.fetchall() == [(30, 3)]
    assert standing == [("192.0.2.7", 1, True), ("192.0.2.8", 1, False),  # in force, lifted,
                        ("192.0.2.9", 1, False)]                          # ended
    assert decide(mx1, "192.0.2.7") == (None, "already blocked")
    assert decide(mx1, "192.0.2.8")[0] is not None  # lifted on version 4: blockable again
    assert decide(mx1, "192.0.2.9")[0] is not None
    nth = mx1.execute("SELECT blocks FROM syslogban.standing WHERE target = '192.0.2.9'")
    assert nth.fetchone() == (2,)  # its block of version 4 counts for escalation


def test_only_the_unblock_role_revokes(cluster: Cluster, database: str) -> None:
    mx1 = connect(cluster, database, "mx1")
    admin = connect(cluster, database, "mx-admin", unblock=True)
    decide(mx1, "192.0.2.7")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mx1.execute("SELECT syslogban.revoke('192.0.2.7')")
    admin.execute("SELECT syslogban.revoke('192.0.2.7')")
    assert mx1.execute("SELECT count(*) FROM syslogban.active").fetchone() == (0,)
    log = mx1.execute("SELECT origin, revoked FROM syslogban.decisions ORDER BY id").fetchall()
    assert log == [("mx1", False), ("mx-admin", True)]
    assert decide(mx1, "192.0.2.7")[0] is not None  # blocked again after the unblock


def test_the_central_allow_list_refuses(cluster: Cluster, database: str) -> None:
    cluster.sql("INSERT INTO syslogban.allowlist VALUES ('203.0.113.0/24', 'partner relay')",
                database=database)
    mx1 = connect(cluster, database, "mx1")
    assert decide(mx1, "203.0.113.5") == (None, "allow-listed in the fleet")
    assert decide(mx1, "203.0.0.0/16") == (None, "allow-listed in the fleet")


def test_notify_reaches_a_listener(cluster: Cluster, database: str) -> None:
    mx1, mx2 = connect(cluster, database, "mx1"), connect(cluster, database, "mx2")
    mx2.execute(f"LISTEN {schema.NOTIFY_CHANNEL}")
    decided = decide(mx1, "192.0.2.7")[0]
    ready, _, _ = select.select([mx2.pgconn.socket], [], [], 30)
    assert ready, "no notification within 30 s"
    notice = next(mx2.notifies())
    assert (notice.channel, notice.payload) == (schema.NOTIFY_CHANNEL, str(decided))


def test_tls_with_a_client_certificate_is_the_role(cluster: Cluster, database: str) -> None:
    cluster.add_host("mx-tls")
    with psycopg.connect(cluster.tls_dsn("mx-tls", database), autocommit=True) as conn:
        assert conn.execute("SELECT session_user, ssl FROM pg_stat_ssl "
                            "JOIN pg_stat_activity USING (pid) WHERE pid = pg_backend_pid()"
                            ).fetchone() == ("mx-tls", True)
        assert observe(conn, [1]) == 1
    crt, key = cluster.client_certificate("mx-other")
    wrong = cluster.tls_dsn("mx-tls", database).split("&sslcert")[0] + f"&sslcert={crt}&sslkey={key}"
    with pytest.raises(psycopg.OperationalError, match="certificate authentication failed"):
        psycopg.connect(wrong)


def test_status_lists_hosts_and_hides_the_password(cluster: Cluster, database: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mx1 = connect(cluster, database, "mx1")
    observe(mx1, [1])
    config = tmp_path / "syslogban.toml"
    config.write_text(f'[fleet]\ndsn = "{cluster.dsn("syslogban", OWNER_PASSWORD, database)}"\n')
    result = subprocess.run([*SYSLOGBAN, "fleet", "status", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert "1 hosts" in result.stdout and result.stdout.splitlines()[2].startswith("mx1 ")
    from syslogban.config import load
    assert OWNER_PASSWORD not in str(load(str(config)).effective())
