"""Getting fail2ban's test corpus: Debian's `fail2ban` package, read in memory.

Why this way: the corpus is GPL data that belongs to fail2ban, so it is never
copied into this repository, and the fail2ban daemon is never installed (a
second blocker on a test machine is the last thing anyone wants). The .deb is
downloaded once with `apt-get download` into a cache directory outside the
repository, or named by $SYSLOGBAN_FAIL2BAN_DEB, and only the files needed
here are read out of it, straight into memory.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEB_ENV = "SYSLOGBAN_FAIL2BAN_DEB"
CACHE_NAME = "syslogban-conformance"
DOWNLOAD_TIMEOUT = 300.0  # seconds; apt-get fails fast without a network, but may stall on one

LOGS_DIR = "usr/lib/python3/dist-packages/fail2ban/tests/files/logs/"
FILTERS_DIR = "etc/fail2ban/filter.d/"

_DEB_NAME = re.compile(r"fail2ban_(?P<version>[^_]+)_\w+\.deb")


class CorpusUnavailable(Exception):
    """The corpus cannot be had here; the message is the reason (a pytest skip reason)."""


@dataclass(frozen=True, slots=True)
class Package:
    """What the conformance runner needs from one fail2ban .deb."""

    source: Path                # the .deb read
    version: str                # Debian version, e.g. "1.0.2-2"
    logs: dict[str, bytes]      # tests/files/logs/<name> -> contents (bytes: fed as they are)
    filters: dict[str, str]     # filter.d/<name>.conf -> text (for the filters' modes)


def cache_dir() -> Path:
    """Where the downloaded .deb is kept: $XDG_CACHE_HOME or ~/.cache, never the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / CACHE_NAME


def load_package() -> Package:
    """The corpus of the .deb named by $SYSLOGBAN_FAIL2BAN_DEB, cached, or downloaded now."""
    return read_deb(find_deb())


def find_deb() -> Path:
    named = os.environ.get(DEB_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise CorpusUnavailable(f"${DEB_ENV} names {named}, which is not a file")
        return path
    cache = cache_dir()
    cached = sorted(cache.glob("fail2ban_*.deb"), key=lambda p: p.stat().st_mtime)
    if cached:
        return cached[-1]
    return download(cache)


def download(cache: Path) -> Path:
    """`apt-get download fail2ban` into `cache` (downloads; installs nothing).

    It runs in a fresh directory inside the cache and the .deb is moved up
    only when complete, so an interrupted download never looks like a corpus.
    """
    try:
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="download-", dir=cache))
    except OSError as exc:
        raise CorpusUnavailable(f"cannot create the cache directory {cache}: {exc}") from None
    try:
        try:
            subprocess.run(["apt-get", "download", "fail2ban"], cwd=work, check=True,
                           capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
        except FileNotFoundError:
            raise CorpusUnavailable("apt-get is not available to download the fail2ban "
                                    f"package (or set ${DEB_ENV} to a fail2ban .deb)") from None
        except subprocess.TimeoutExpired:
            raise CorpusUnavailable(f"'apt-get download fail2ban' took longer than "
                                    f"{DOWNLOAD_TIMEOUT:g}s") from None
        except subprocess.CalledProcessError as exc:
            raise CorpusUnavailable("'apt-get download fail2ban' failed: "
                                    + _apt_error(exc)) from None
        debs = list(work.glob("fail2ban_*.deb"))
        if len(debs) != 1:
            raise CorpusUnavailable("'apt-get download fail2ban' left no single .deb")
        target = cache / debs[0].name
        debs[0].replace(target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _apt_error(exc: subprocess.CalledProcessError) -> str:
    """apt's own error lines ("E: ..."), not its warnings, which come last."""
    lines = (exc.stderr or exc.stdout or "").strip().splitlines()
    errors = [line for line in lines if line.startswith("E:")]
    return "; ".join(errors or lines[-1:]) or f"exit status {exc.returncode}"


def read_deb(path: Path) -> Package:
    """The corpus log files and filter configurations of a fail2ban .deb."""
    logs: dict[str, bytes] = {}
    filters: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(_data_tar(path)), mode="r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.removeprefix("./")
            directory, _, base = name.rpartition("/")
            if directory + "/" == LOGS_DIR:
                logs[base] = _member_bytes(tar, member)
            elif directory + "/" == FILTERS_DIR and base.endswith(".conf"):
                filters[base.removesuffix(".conf")] = _member_bytes(tar, member).decode("utf-8")
    if not logs:
        raise CorpusUnavailable(f"{path} holds no fail2ban test corpus ({LOGS_DIR})")
    return Package(path, _version(path), logs, filters)


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file
    return stream.read()


def _version(path: Path) -> str:
    m = _DEB_NAME.fullmatch(path.name)
    return m.group("version").replace("%3a", ":") if m else path.name


def _data_tar(path: Path) -> bytes:
    """The package's file system as a tar archive (possibly compressed).

    dpkg-deb knows every compression a .deb may use (Ubuntu's zstd too);
    without it (a .deb named by $SYSLOGBAN_FAIL2BAN_DEB on another system)
    the ar archive is read here, which covers Debian's xz and gzip.
    """
    if shutil.which("dpkg-deb"):
        done = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise CorpusUnavailable(f"dpkg-deb cannot read {path}: "
                                    f"{done.stderr.decode(errors='replace').strip()}")
        return done.stdout
    member, data = _ar_member(path, "data.tar")
    if member.endswith(".zst"):
        raise CorpusUnavailable(f"{path}: {member} needs dpkg-deb (zstd) to be read")
    return data  # compressed: tarfile's "r:*" reads xz, gzip and bzip2


def _ar_member(path: Path, prefix: str) -> tuple[str, bytes]:
    """The first member of the ar archive `path` whose name starts with `prefix`."""
    data = path.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise CorpusUnavailable(f"{path} is not a .deb (no ar archive)")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        pos += 60
        if name.startswith(prefix):
            return name, data[pos:pos + size]
        pos += size + (size & 1)
    raise CorpusUnavailable(f"{path} has no {prefix}.* member")
