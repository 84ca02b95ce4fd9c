"""A private PostgreSQL 15 for the fleet tests: never the system's cluster.

initdb in a temporary directory owned by `nobody`, the server run as nobody,
its unix socket in that directory and TCP on a free loopback port (never
5432) with TLS: a throwaway CA, a server certificate for 127.0.0.1 and a
client certificate per host role (CN = role, `cert` authentication). Password
roles log in over the unix socket (scram-sha-256). contrib/postgresql/setup.sql
makes the roles and the database, as an admin would.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from system import requires

ROOT = Path(__file__).resolve().parent.parent
BIN = Path("/usr/lib/postgresql/15/bin")
SETUP_SQL = ROOT / "contrib" / "postgresql" / "setup.sql"
OWNER_PASSWORD = "owner-secret"
STEP = 60  # seconds any one step (initdb, a psql, a shutdown) may take: never a hang

requires_postgres = requires(
    os.geteuid() == 0 and (BIN / "postgres").exists() and shutil.which("openssl") is not None,
    "needs root (to run PostgreSQL as nobody), postgresql-15 and openssl")

_databases = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One private server; stop() and start() again keep its data."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="syslogban-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        os.chown(self.dir, self.uid, self.gid)
        self._certificates()
        self._as_nobody(BIN / "initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                        "--no-instructions", "-A", "trust")
        (self.data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "local all all scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 cert\n"
            "hostnossl all all 127.0.0.1/32 scram-sha-256\n")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\n"
                       "ssl = on\n"
                       f"ssl_cert_file = '{self.dir}/server.crt'\n"
                       f"ssl_key_file = '{self.dir}/server.key'\n"
                       f"ssl_ca_file = '{self.dir}/ca.crt'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 200\nshared_buffers = 64MB\n"
                       "log_min_messages = warning\n")
        self.start()
        self.psql("-v", "ON_ERROR_STOP=1", "-q", "-f", str(SETUP_SQL))
        self.sql(f"ALTER ROLE syslogban PASSWORD '{OWNER_PASSWORD}'")

    def _as_nobody(self, *argv: object) -> None:
        subprocess.run([str(a) for a in argv], check=True, capture_output=True,
                       user=self.uid, group=self.gid, cwd=self.dir, timeout=STEP)

    def _certificates(self) -> None:
        d = self.dir
        openssl = ["openssl", "req", "-nodes", "-newkey", "rsa:2048", "-days", "2"]
        subprocess.run([*openssl, "-x509", "-keyout", d / "ca.key", "-out", d / "ca.crt",
                        "-subj", "/CN=syslogban test CA"], check=True, capture_output=True,
                       timeout=STEP)
        self._sign("server", "127.0.0.1", ["-addext", "subjectAltName=IP:127.0.0.1"])
        for name in ("server.key", "server.crt", "ca.crt"):
            os.chown(d / name, self.uid, self.gid)

    def _sign(self, stem: str, cn: str, extra: list[str]) -> tuple[Path, Path]:
        d = self.dir
        key, csr, crt = d / f"{stem}.key", d / f"{stem}.csr", d / f"{stem}.crt"
        subprocess.run(["openssl", "req", "-nodes", "-newkey", "rsa:2048", "-keyout", key,
                        "-out", csr, "-subj", f"/CN={cn}", *extra],
                       check=True, capture_output=True, timeout=STEP)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", d / "ca.crt",
                        "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2", "-out", crt,
                        "-copy_extensions", "copy"], check=True, capture_output=True,
                       timeout=STEP)
        os.chmod(key, 0o600)
        return crt, key

    def client_certificate(self, role: str) -> tuple[Path, Path]:
        """(certificate, key) of a client whose CN is `role`."""
        return self._sign(f"client-{role}", role, [])

    # ---------------------------------------------------------- running

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "postgres"), "-D", str(self.data)], user=self.uid, group=self.gid,
            cwd=self.dir, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "server.log", "ab"))
        deadline = time.monotonic() + 30
        while subprocess.run([str(BIN / "pg_isready"), "-q", "-t", "5", "-h", str(self.dir),
                              "-p", str(self.port)], timeout=STEP).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start:\n"
                                   + (self.dir / "server.log").read_text())
            time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected, committed data stays."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.proc.wait(timeout=STEP)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)  # "immediate": recovery at the next start
                self.proc.wait(timeout=STEP)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---------------------------------------------------------- talking

    def psql(self, *args: str, database: str = "postgres") -> str:
        return subprocess.run(
            ["psql", "-X", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
             "-d", database, *args], check=True, capture_output=True, text=True,
            timeout=STEP).stdout

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self.psql("-v", "ON_ERROR_STOP=1", "-Atq", "-c", statement,
                         database=database).strip()

    def dsn(self, role: str, password: str, database: str = "syslogban") -> str:
        """Over the unix socket, with a password."""
        return (f"postgresql://{role}:{password}@/{database}?host={self.dir}"
                f"&port={self.port}")

    def tls_dsn(self, role: str, database: str = "syslogban") -> str:
        """Over TCP with TLS, verify-full, and the role's client certificate."""
        crt, key = self.client_certificate(role)
        return (f"postgresql://{role}@127.0.0.1:{self.port}/{database}?sslmode=verify-full"
                f"&sslrootcert={self.dir}/ca.crt&sslcert={crt}&sslkey={key}")

    def add_host(self, role: str, unblock: bool = False) -> str:
        """A host role as contrib/postgresql/README.md says; its password."""
        password = f"pw-{role}"
        self.sql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                 f"THEN CREATE ROLE \"{role}\" LOGIN IN ROLE syslogban_host; END IF; END $$")
        self.sql(f"ALTER ROLE \"{role}\" PASSWORD '{password}'")
        self.sql(f"{'GRANT' if unblock else 'REVOKE'} syslogban_unblock "
                 f"{'TO' if unblock else 'FROM'} \"{role}\"")
        return password

    def new_database(self) -> str:
        """An empty database for one test, owned by syslogban, like setup.sql's."""
        name = f"fleet_{os.getpid()}_{next(_databases)}"
        self.sql(f"CREATE DATABASE {name} OWNER syslogban")
        self.sql(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
        self.sql(f"GRANT CONNECT ON DATABASE {name} TO syslogban, syslogban_host, "
                 "syslogban_unblock")
        return name


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One server for the session (each test takes a database of its own)."""
    c = Cluster()
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture()
def database(cluster: Cluster) -> str:
    """A fresh database with the fleet schema, made by `syslogban fleet init`."""
    name = cluster.new_database()
    from syslogban.fleet.admin import init
    init(cluster.dsn("syslogban", OWNER_PASSWORD, name))
    return name
