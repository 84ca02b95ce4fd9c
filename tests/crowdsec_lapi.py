"""A private CrowdSec Local API for tests: Debian's crowdsec 1.4.6, unpacked by
contrib/crowdsec/install-lapi.sh, run as `crowdsec -no-cs` (the LAPI alone).

Each instance has its own directory (configuration, SQLite database in WAL
mode, log), listens on loopback (a free port of the host, or 8080 inside a
network namespace the test made), has no Central API (the `online_client`
section is left out) and runs as `nobody` when the tests run as root. `cscli`
uses the same configuration, with a machine of its own.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netns import run_in
from system import requires

DEFAULT_DIR = ("/var/cache/syslogban-e2e/crowdsec" if os.geteuid() == 0 else
               os.path.expanduser("~/.cache/syslogban-e2e/crowdsec"))
CROWDSEC_DIR = Path(os.environ.get("SYSLOGBAN_CROWDSEC_DIR") or DEFAULT_DIR)
CROWDSEC = CROWDSEC_DIR / "usr/bin/crowdsec"
CSCLI = CROWDSEC_DIR / "usr/bin/cscli"

requires_lapi = requires(
    CROWDSEC.exists() and CSCLI.exists(),
    f"no CrowdSec LAPI in {CROWDSEC_DIR}: contrib/crowdsec/install-lapi.sh unpacks it")

CONFIG = """\
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: {dir}/log/
  working_dir: {dir}
config_paths:
  config_dir: {dir}/
  data_dir: {dir}/data/
  simulation_path: {dir}/simulation.yaml
  hub_dir: {dir}/hub/
  index_path: {dir}/hub/.index.json
  notification_dir: {dir}/notifications/
  plugin_dir: {root}/usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: {dir}/acquis.yaml
cscli:
  output: human
  color: "no"
db_config:
  log_level: info
  type: sqlite
  db_path: {dir}/data/crowdsec.db
  use_wal: true
api:
  client:
    insecure_skip_verify: {insecure}
    credentials_path: {dir}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: {listen}
    profiles_path: {dir}/profiles.yaml
    console_path: {dir}/console.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
{tls}prometheus:
  enabled: false
"""
TLS = """\
    tls:
      cert_file: {cert}
      key_file: {key}
"""


def _opener() -> urllib.request.OpenerDirector:
    """No proxy from the environment, certificates unchecked (the LAPI is ours)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       urllib.request.HTTPSHandler(context=context))


def answers(url: str) -> bool:
    """Whether the LAPI answers its health check."""
    try:
        with _opener().open(url, timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lapi:
    """One LAPI process and the cscli that manages it."""

    def __init__(self, netns: str | None = None, port: int | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.netns = netns
        self.port = port or (8080 if netns else free_port())
        self.dir = Path(tempfile.mkdtemp(prefix="syslogban-lapi-"))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/"
        for sub in ("data", "log", "hub"):
            (self.dir / sub).mkdir()
        shutil.copy(CROWDSEC_DIR / "etc/crowdsec/profiles.yaml", self.dir)
        (self.dir / "simulation.yaml").write_text("simulation: off\n")
        (self.dir / "console.yaml").write_text("")
        (self.dir / "acquis.yaml").write_text("")
        tls_text = ""
        if tls:
            for i, source in enumerate(tls):  # readable by the LAPI's user
                shutil.copy(source, self.dir / ("cert.pem", "key.pem")[i])
            tls_text = TLS.format(cert=self.dir / "cert.pem", key=self.dir / "key.pem")
        self.config = self.dir / "config.yaml"
        self.config.write_text(CONFIG.format(dir=self.dir, root=CROWDSEC_DIR,
                                             listen=f"127.0.0.1:{self.port}", tls=tls_text,
                                             insecure="true" if tls else "false"))
        self.log = self.dir / "lapi.out"
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        # cscli's own machine: the one that adds and deletes decisions
        self.cscli("machines", "add", "cscli-admin", "--password", "cscli-admin-password",
                   "-f", str(self.dir / "local_api_credentials.yaml"), "--url", self.url)

    def _wrap(self) -> list[str]:
        wrap = ["ip", "netns", "exec", self.netns] if self.netns else []
        if os.geteuid() == 0:
            wrap += ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        return wrap

    def start(self) -> Lapi:
        if self.netns:
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*self._wrap(), str(CROWDSEC), "-c", str(self.config),
                                          "-no-cs"], stdout=out, stderr=out,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the LAPI did not start:\n{self.output()}")
            time.sleep(0.1)
        return self

    def healthy(self) -> bool:
        if self.netns:
            return run_in(self.netns, answers, f"{self.url}health")
        return answers(f"{self.url}health")

    def output(self) -> str:
        logs = [self.log, *sorted((self.dir / "log").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace") for p in logs if p.exists())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cscli(self, *args: str) -> str:
        result = subprocess.run([*self._wrap(), str(CSCLI), "-c", str(self.config), *args],
                                capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise AssertionError(f"cscli {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}{result.stderr}")
        return result.stdout

    def cscli_json(self, *args: str) -> Any:
        return json.loads(self.cscli(*args, "-o", "json") or "null")

    def add_machine(self, name: str, password: str) -> None:
        self.cscli("machines", "add", name, "--password", password, "-f", "/dev/null", "--force")

    def add_bouncer(self, name: str) -> str:
        return self.cscli("bouncers", "add", name, "-o", "raw").strip()

    def decisions(self, *filters: str) -> list[dict[str, Any]]:
        """Active decisions, every origin included (1.4's default hides all but
        those of crowdsec and cscli)."""
        alerts = self.cscli_json("decisions", "list", "--all", *filters) or []
        return [d for alert in alerts for d in alert.get("decisions") or []]


@pytest.fixture()
def lapi() -> Iterator[Lapi]:
    """A running LAPI on a free loopback port of the host."""
    instance = Lapi()
    try:
        yield instance.start()
    finally:
        instance.close()
