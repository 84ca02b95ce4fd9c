"""contrib/setup-venv.sh installs every Debian package the demo and the tests
use: on a fresh Debian 12 the README's two commands must suffice (CI runs
there, and a missing package only shows as a skip, which fails on CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "contrib" / "setup-venv.sh"

# Every command a test or ./demo runs, and the Debian package it comes from.
# Essential packages (dpkg, util-linux, bsdutils) are on every Debian.
COMMANDS = {
    "nft": "nftables", "ip": "iproute2", "ipset": "ipset",
    "iptables-restore": "iptables", "ip6tables-restore": "iptables",
    "rsyslogd": "rsyslog", "systemd-analyze": "systemd",
    "systemd-socket-activate": "systemd", "openssl": "openssl",
}
ESSENTIAL = {"logger": "bsdutils", "setpriv": "util-linux", "dpkg-deb": "dpkg",
             "mount": "mount"}


def setup_list() -> list[list[str]]:
    out = subprocess.run(["bash", str(SETUP), "--list"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [line.split() for line in out.splitlines()]


def test_setup_installs_every_package_the_tests_use() -> None:
    entries = setup_list()
    apt = {words[1] for words in entries if words[0] == "apt"}
    missing = {command: package for command, package in COMMANDS.items() if package not in apt}
    assert not missing, f"contrib/setup-venv.sh does not install {missing}"
    assert {"python3-venv", "python3-nftables", "postgresql-15"} <= apt


def test_setup_unpacks_syslog_ng_privately() -> None:
    """syslog-ng conflicts with rsyslog: unpacked, never installed."""
    unpacked = {words[1]: words[2:] for words in setup_list() if words[0] == "unpack"}
    assert unpacked["syslog-ng"] == ["syslog-ng-core"]
    assert "syslog-ng-core" not in {words[1] for words in setup_list() if words[0] == "apt"}


@pytest.mark.parametrize("command, package", sorted((COMMANDS | ESSENTIAL).items()))
def test_the_table_names_the_packages_of_this_machine(command: str, package: str) -> None:
    """Where the command is here, dpkg says it comes from that package (the
    table above stays true); /usr/sbin and /sbin are one directory (usrmerge)."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found is None or shutil.which("dpkg-query") is None:
        pytest.skip(f"{command} is not installed here; the setup installs {package}")
    path = os.path.realpath(found)
    candidates = sorted({path, path.replace("/usr/", "/", 1), "/usr" + path})
    result = subprocess.run(["dpkg-query", "-S", *candidates], capture_output=True,
                            text=True, check=False)
    owners = {owner.strip() for line in result.stdout.splitlines()
              for owner in line.split(":", 1)[0].split(",")}
    assert package in owners, f"{found} -> {path} belongs to {owners}"


def test_setup_fetches_the_crowdsec_lapi() -> None:
    assert ["prepare", "contrib/crowdsec/install-lapi.sh"] in setup_list()
