"""The Debian package: built with contrib/debian/build, installed with apt on a fresh Debian 12.

Both happen in throwaway Debian 12 roots (tests/debian_root.py), never on this
machine: the build in one with the Build-Depends, the install in a minimal
one, where apt must find every dependency in Debian. The installed command
then checks a log (with Hyperscan), its rules and its configuration, blocks
an attacker in nftables inside a network namespace, and `apt-get purge`
must take the package and its table away again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian_root import CACHE, base_root, build_root, missing_tools, overlay, run_in
from system import requires

ROOT = Path(__file__).resolve().parent.parent
ATTACK = ("Nov 21 10:00:0{n} mx postfix/smtpd[10{n}]: warning: unknown[192.0.2.7]: "
          "SASL LOGIN authentication failed: UGFzc3dvcmQ6")

pytestmark = requires(
    os.geteuid() == 0 and not missing_tools() and shutil.which("dpkg") is not None,
    "needs root, dpkg and " + ", ".join(missing_tools() or ["debootstrap"]) +
    " (it builds Debian 12 roots with debootstrap and mounts overlays)")


def source_files() -> list[str]:
    """What contrib/debian/build would copy: tracked and new files, nothing ignored."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).exists()]


@pytest.fixture(scope="module")
def deb() -> Iterator[Path]:
    """dist/syslogban_VERSION_ARCH.deb, built by contrib/debian/build in a build root."""
    builder = build_root(ROOT / "contrib" / "debian" / "debian" / "control")
    with overlay(builder) as root:
        src = root / "root" / "src"
        for name in source_files():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
        built = run_in(root, "cd /root/src && contrib/debian/build").stdout.split()[-1]
        package = CACHE / Path(built).name
        shutil.copy(src / built, package)
    yield package


@pytest.fixture()
def netns() -> Iterator[str]:
    name = f"sbdeb-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=False)


def nft_tables(netns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "tables"],
                          capture_output=True, text=True, check=True).stdout


def test_the_package_installs_runs_and_purges_on_a_fresh_debian_12(
        deb: Path, netns: str) -> None:
    assert deb.name.startswith("syslogban_") and deb.name.endswith(".deb")
    with overlay(base_root()) as root:
        shutil.copy(deb, root / "root" / deb.name)
        shutil.copy(ROOT / "contrib" / "sample" / "mail.log", root / "root" / "mail.log")
        # every dependency from Debian's own archive, nothing from anywhere else
        run_in(root, f"apt-get update -qq && apt-get install -y -qq ./root/{deb.name} "
                     ">/dev/null")
        installed = run_in(root, "dpkg-query -W -f='${Status} ${Conffiles}\\n' syslogban; "
                                 "getent passwd syslogban; readlink -f /usr/bin/syslogban; "
                                 "ls /usr/share/man/man8/syslogban.8.gz "
                                 "/usr/share/man/man5/syslogban.toml.5.gz "
                                 "/usr/share/bash-completion/completions/syslogban "
                                 "/usr/share/zsh/vendor-completions/_syslogban "
                                 "/lib/systemd/system/syslogban.service "
                                 "/etc/logrotate.d/syslogban "
                                 "/usr/share/doc/syslogban/copyright "
                                 "/usr/share/doc/syslogban/examples/syslogban-omprog.conf").stdout
        assert installed.startswith("install ok installed ")
        assert "\n /etc/syslogban/syslogban.toml " in installed  # a conffile
        assert "syslogban:x:" in installed and "/opt/venvs/syslogban/bin/syslogban" in installed
        assert "BSD 2-Clause" in (root / "usr/share/doc/syslogban/copyright").read_text()
        assert "ExecStart=/usr/bin/syslogban run" in \
            (root / "lib/systemd/system/syslogban.service").read_text()
        assert "_syslogban()" in (root / "usr/share/bash-completion/completions/syslogban"
                                  ).read_text()

        check = run_in(root, "syslogban check /root/mail.log").stdout
        assert "scanner: hyperscan" in check and " 0 rejected" in check
        assert "0 failed" in run_in(root, "syslogban rules check").stdout
        # the installed file is the one read when --config does not name another
        assert "/etc/syslogban/syslogban.toml: ok (backend nftables" in run_in(
            root, "syslogban config check").stdout
        run_in(root, "sed -i '1i windw = \"1h\"' /etc/syslogban/syslogban.toml")
        typo = run_in(root, "syslogban config check", check=False)
        assert typo.returncode == 2 and "/etc/syslogban/syslogban.toml: windw:" in typo.stderr
        run_in(root, "sed -i '1d' /etc/syslogban/syslogban.toml")
        assert "run the daemon" in run_in(root, "MANWIDTH=80 syslogban --help").stdout
        page = run_in(root, "zcat /usr/share/man/man8/syslogban.8.gz").stdout
        assert ".SH EXAMPLES" in page and ".SH FILES" in page and ".SH EXIT STATUS" in page

        # In a network namespace of its own: a block in nftables, then purge removes all.
        attacks = "\\n".join(ATTACK.format(n=n) for n in range(3))
        run_in(root, f"printf '{attacks}\\n' | syslogban run --stdin "
                     "--config /etc/syslogban/syslogban.toml --allow-own-addresses false "
                     "--control /run/syslogban/control.sock", netns=netns)
        tables = nft_tables(netns)
        assert "table inet syslogban" in tables
        listed = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "set", "inet",
                                 "syslogban", "hosts4"], capture_output=True, text=True,
                                check=True).stdout
        assert "192.0.2.7" in listed
        run_in(root, "apt-get purge -y -qq syslogban >/dev/null", netns=netns)
        assert "syslogban" not in nft_tables(netns)
        gone = run_in(root, "dpkg-query -W syslogban; ls -d /opt/venvs/syslogban /etc/syslogban "
                            "/var/lib/syslogban /usr/bin/syslogban", check=False)
        assert gone.returncode != 0 and gone.stdout == ""
        assert gone.stderr.count("No such file or directory") == 4
