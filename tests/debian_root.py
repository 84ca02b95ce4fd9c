"""Throwaway Debian 12 roots for the package test: the host's packages are never touched.

A minimal Debian 12 root is made once with debootstrap and kept in CACHE
(about 250 MB); a second one adds the Build-Depends of contrib/debian (kept
until debian/control changes). Each use gets its own overlay over one of them,
in its own mount namespace (proc, sys, dev, a tmpfs /tmp), so that nothing it
installs or removes outlives it. The network is the host's unless a network
namespace is given (ip netns), so apt and pip reach their registries.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("SYSLOGBAN_TEST_CACHE", "/var/cache/syslogban-tests"))
MIRROR = "http://deb.debian.org/debian"
SOURCES = f"""deb {MIRROR} bookworm main
deb {MIRROR} bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""
# TLS to PyPI from inside the root: the root's own CA store (with the host's
# local CAs added), never a bundle pip carries.
CERTS = "/etc/ssl/certs/ca-certificates.crt"
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
       "SSL_CERT_FILE": CERTS, "PIP_CERT": CERTS, "REQUESTS_CA_BUNDLE": CERTS}
# No service starts inside a root (policy-rc.d, as Debian's own chroots do).
POLICY_RC_D = "#!/bin/sh\nexit 101\n"


def missing_tools() -> list[str]:
    return [t for t in ("debootstrap", "unshare", "chroot", "mount", "ip")
            if shutil.which(t) is None]


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_in(root: Path, command: str, netns: str = "", check: bool = True,
           timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """`command` (bash) in `root`, in a mount namespace of its own."""
    setup = ('set -e; r=$1; mount -t proc proc "$r/proc"; mount -t sysfs sysfs "$r/sys"; '
             'mount --rbind /dev "$r/dev"; mount -t tmpfs tmpfs "$r/tmp"; '
             'mount -t tmpfs tmpfs "$r/run"; chmod 1777 "$r/tmp"; shift; '
             'exec chroot "$r" /usr/bin/env -i ' +
             " ".join(f"{k}={v}" for k, v in ENV.items()) + ' bash -c "$1"')
    argv = ["unshare", "--mount", "--propagation", "private", "--fork",
            "bash", "-c", setup, "root", str(root), command]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"in {root}: {command}\nexit {result.returncode}\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def _prepare(root: Path) -> None:
    """Sources with updates and security, the host's local CAs, no service starts."""
    (root / "etc/apt/sources.list").write_text(SOURCES)
    (root / "usr/sbin/policy-rc.d").write_text(POLICY_RC_D)
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    local = Path("/usr/local/share/ca-certificates")
    if local.is_dir():
        for cert in local.glob("*.crt"):
            shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    run_in(root, "update-ca-certificates >/dev/null && apt-get update -qq")


def base_root() -> Path:
    """A minimal Debian 12 (debootstrap --variant=minbase), made once."""
    root = CACHE / "bookworm"
    with _locked("bookworm"):
        if not (root / ".complete").exists():
            partial = CACHE / "bookworm.partial"
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(["debootstrap", "--variant=minbase", "--include=ca-certificates",
                            "bookworm", str(partial), MIRROR], check=True,
                           capture_output=True, timeout=3600)
            _prepare(partial)
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
            (root / ".complete").touch()
    return root


def build_root(control: Path) -> Path:
    """The base root plus the Build-Depends of `control`, remade when it changes."""
    base = base_root()
    root = CACHE / "bookworm-build"
    stamp = hashlib.sha256(control.read_bytes()).hexdigest()
    with _locked("bookworm-build"):
        done = root / ".complete"
        if not done.exists() or done.read_text() != stamp:
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run(["cp", "-a", str(base), str(root)], check=True)
            run_in(root, "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                         "dpkg-dev git >/dev/null")
            # apt-get build-dep takes a tree with debian/control (/tmp is a tmpfs in there)
            (root / "root/deps/debian").mkdir(parents=True, exist_ok=True)
            shutil.copy(control, root / "root/deps/debian/control")
            run_in(root, "apt-get build-dep -y -qq /root/deps >/dev/null")
            shutil.rmtree(root / "root/deps")
            done.write_text(stamp)
    return root


@contextlib.contextmanager
def overlay(lower: Path) -> Iterator[Path]:
    """A writable copy of `lower` that vanishes afterwards (overlayfs)."""
    work = Path(tempfile.mkdtemp(prefix="syslogban-root-", dir=CACHE))
    for name in ("upper", "work", "root"):
        (work / name).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={work}/upper,workdir={work}/work",
                    str(work / "root")], check=True)
    try:
        yield work / "root"
    finally:
        subprocess.run(["umount", "-l", str(work / "root")], check=False)
        shutil.rmtree(work, ignore_errors=True)
