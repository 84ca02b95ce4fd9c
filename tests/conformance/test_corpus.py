"""The corpus reader, on hand-written blocks in fail2ban's format and, when the
package is at hand, on a few blocks of the real corpus checked by hand."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from conformance.corpus import (JOURNAL_STAMP, CorpusError, condition_holds, load_filter,
                                parse_file)
from conformance.fetch import LOGS_DIR, CorpusUnavailable, Package, read_deb
from system import need

SAMPLE = b"""\
# filterOptions: [{}, {"mode": "aggressive"}]

# failJSON: { "time": "2005-01-01T00:00:01", "match": true , "host": "192.0.2.1" }
Jan  1 00:00:01 mx svc[1]: bad login from 192.0.2.1
# a comment, then an unannotated line
Jan  1 00:00:02 mx svc[1]: hello from 192.0.2.2
# failJSON: { "match": false, "desc": "a success" }
Jan  1 00:00:03 mx svc[1]: good login from 192.0.2.3

# filterOptions: [{"mode": "auth"}, {"mode": "aggressive"}]
# failJSON: { "constraint": "opts.get('mode') == 'aggressive'", "match": true, "host": ["example.com"] }
Jan  1 00:00:04 mx svc[1]: odd login from example.com
# failJSON: { "constraint": "name == 'other'", "match": true, "host": "192.0.2.5" }
Jan  1 00:00:05 mx svc[1]: other filter only
# filterOptions: [{"test.condition": "name == 'other'"}]
# failJSON: { "match": true, "host": "192.0.2.6" }
Jan  1 00:00:06 mx svc[1]: dropped block
Jan  1 00:00:07 mx svc[1]: unannotated in a dropped block
# addFILE: "svc-journal"
"""

JOURNAL = b"""\
# fileOptions: {"logtype": "journal"}
# filterOptions: [{}]
# failJSON: { "match": true, "ip4": "192.0.2.8" }
mx svc[2]: bad login from 192.0.2.8
# failJSON: { "match": true }
# fail2ban takes the line after failJSON, whatever it is
# filterOptions: [{"mode": "ddos"}]
# failJSON: { "match": true, "host": "192.0.2.9" }
mx svc[2]: no final newline"""


def test_annotations_apply_to_the_next_line_in_their_block() -> None:
    parsed = parse_file("svc", SAMPLE, "svc")
    by_line = {line.lineno: line for line in parsed.lines}
    assert sorted(by_line) == [4, 6, 8, 12]  # 14: constraint names another filter
    attack = by_line[4].annotation
    assert attack is not None and attack.match and attack.addresses == ("192.0.2.1",)
    assert attack.modes == {None, "aggressive"}
    assert by_line[6].annotation is None  # unannotated: expected to match nothing
    success = by_line[8].annotation
    assert success is not None and not success.match and success.desc == "a success"
    constrained = by_line[12].annotation  # the constraint keeps the aggressive option set
    assert constrained is not None and constrained.modes == {"aggressive"}
    assert constrained.addresses == ("example.com",)
    assert parsed.includes == ("svc-journal",)


def test_stream_keeps_line_numbers_and_blanks_comments() -> None:
    parsed = parse_file("svc", SAMPLE, "svc")
    rows = parsed.stream().split(b"\n")
    assert len(rows) == parsed.line_count + 1 and rows[-1] == b""
    assert rows[3] == b"Jan  1 00:00:01 mx svc[1]: bad login from 192.0.2.1"
    assert rows[0] == rows[2] == rows[4] == b""  # filterOptions, failJSON, comment
    assert rows[16] == b""  # line 17: in a block dropped for this filter


def test_conditions_name_the_filter() -> None:
    lines = parse_file("svc", SAMPLE, "other").lines
    assert [line.lineno for line in lines] == [4, 6, 8, 12, 14, 17, 18]


def test_journal_lines_get_a_time_and_fail2ban_takes_any_next_line() -> None:
    parsed = parse_file("svc-journal", JOURNAL, "svc")
    first, comment, last = parsed.lines
    assert first.data == JOURNAL_STAMP + b"mx svc[2]: bad login from 192.0.2.8"
    assert first.annotation is not None and first.annotation.addresses == ("192.0.2.8",)
    assert comment.lineno == 6 and comment.annotation is not None  # as fail2ban reads it
    assert last.lineno == 9 and last.text == "mx svc[2]: no final newline"
    assert last.annotation is not None and last.annotation.modes == {"ddos"}
    assert parsed.line_count == 9


def test_filter_follows_addfile_and_reads_modes_from_its_conf() -> None:
    logs = {"svc": SAMPLE, "svc-journal": JOURNAL}
    modal = load_filter("svc", logs, {"svc": "[Init]\nmode = normal\n"})
    assert [f.name for f in modal.files] == ["svc", "svc-journal"] and modal.has_modes
    assert not load_filter("svc", logs, {"svc": "[Definition]\nfailregex = x\n"}).has_modes
    with pytest.raises(CorpusError, match="addFILE"):
        load_filter("svc", {"svc": SAMPLE}, {})


def test_conditions_are_evaluated_without_eval() -> None:
    assert condition_holds("name=='sshd'", "sshd", {})
    assert condition_holds("opts.get('mode') != 'aggressive'", "sshd", {"mode": "ddos"})
    assert not condition_holds("name == 'a' and not opts.get('mode') == 'x'", "a", {"mode": "x"})
    with pytest.raises(CorpusError, match="unsupported"):
        condition_holds("__import__('os').system('true')", "sshd", {})


def test_an_annotation_without_a_line_is_an_error() -> None:
    with pytest.raises(CorpusError, match="annotates nothing"):
        parse_file("svc", b'# failJSON: { "match": false }\n', "svc")


def _deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal .deb: an ar archive whose data.tar.xz holds `files` (paths in the package)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"x"),
               (b"data.tar.xz", data.getvalue())]
    path.write_bytes(b"!<arch>\n" + b"".join(
        name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
        + str(len(body)).encode().ljust(10) + b"`\n" + body + b"\n" * (len(body) & 1)
        for name, body in members))
    return path


@pytest.mark.parametrize("dpkg_deb", [True, False])
def test_reading_a_deb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dpkg_deb: bool) -> None:
    """With dpkg-deb, or without it (the ar archive read here)."""
    if not dpkg_deb:
        monkeypatch.setattr("conformance.fetch.shutil.which", lambda name: None)
    else:
        need(shutil.which("dpkg-deb"), "needs dpkg-deb (Debian package dpkg)")
    deb = _deb(tmp_path / "fail2ban_9.9-1_all.deb",
               {LOGS_DIR + "svc": SAMPLE, "etc/fail2ban/filter.d/svc.conf": b"mode = x\n",
                "usr/share/doc/fail2ban/README": b"not read"})
    package = read_deb(deb)
    assert package.version == "9.9-1" and package.logs == {"svc": SAMPLE}
    assert package.filters == {"svc": "mode = x\n"}
    with pytest.raises(CorpusUnavailable, match="no fail2ban test corpus"):
        read_deb(_deb(tmp_path / "other.deb", {"usr/bin/x": b""}))


# Hand-checked against fail2ban 1.0.2's corpus (the lines quoted are in it).

def test_real_postfix_sasl_modes(package: Package) -> None:
    postfix = load_filter("postfix", package.logs, package.filters)
    assert postfix.has_modes
    mechanism = [line for line in postfix.files[0].lines
                 if line.text.endswith("SASL CRAM-MD5 authentication failed: "
                                       "Invalid authentication mechanism")]
    assert [(line.annotation.match, line.annotation.modes) for line in mechanism
            if line.annotation] == [(False, {"auth"}), (True, {"aggressive"})]


def test_real_sshd_constraints_and_journal(package: Package) -> None:
    sshd = load_filter("sshd", package.logs, package.filters)
    assert [f.name for f in sshd.files] == ["sshd", "sshd-journal"]
    closed = [line.annotation for line in sshd.files[0].lines
              if line.text == "Nov 28 09:16:05 srv sshd[32310]: Connection closed by "
                              "192.0.2.111 [preauth]"]
    assert [(a.match, a.modes) for a in closed if a] == [(False, {None}),
                                                         (True, {"aggressive"})]
    journal = sshd.files[1].lines[0]
    assert journal.data.startswith(JOURNAL_STAMP + b"srv sshd[")


def test_real_filters_without_modes(package: Package) -> None:
    cyrus = load_filter("cyrus-imap", package.logs, package.filters)
    assert not cyrus.has_modes
    last = cyrus.files[0].lines[-1]
    assert last.annotation is not None and last.annotation.addresses == ("192.0.2.4",)
    assert last.text.endswith("Password verification failed]")  # the file lacks a final newline
