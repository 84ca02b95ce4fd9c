"""The LAPI client against a real CrowdSec Local API (Debian's 1.4.6): the
stream, the machine's login and token, alerts and deletions, TLS, errors."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdsec_lapi import Lapi as LapiProcess
from crowdsec_lapi import lapi, requires_lapi  # noqa: F401 (fixture)
from syslogban.blocker import Block
from syslogban.crowdsec.alerts import alert
from syslogban.crowdsec.decisions import go_duration
from syslogban.crowdsec.lapi import Lapi, LapiError


@requires_lapi
def test_stream_startup_then_deltas(lapi: LapiProcess) -> None:
    key = lapi.add_bouncer("mx2")
    client = Lapi(lapi.url, bouncer_key=key)
    assert client.stream(startup=True) == {"new": None, "deleted": None}
    lapi.cscli("decisions", "add", "-i", "192.0.2.9", "-d", "1h")
    lapi.cscli("decisions", "add", "-r", "198.51.100.0/24", "-d", "2h")
    new = client.stream(startup=False)["new"]
    assert {(d["value"], d["scope"], d["type"], d["origin"]) for d in new} == {
        ("192.0.2.9", "Ip", "ban", "cscli"), ("198.51.100.0/24", "Range", "ban", "cscli")}
    assert client.stream(startup=False)["new"] is None  # nothing new since
    lapi.cscli("decisions", "delete", "-i", "192.0.2.9")
    deleted = client.stream(startup=False)["deleted"]
    assert [d["value"] for d in deleted] == ["192.0.2.9"]
    assert go_duration(deleted[0]["duration"]) <= 0
    again = client.stream(startup=True)
    assert [d["value"] for d in again["new"]] == ["198.51.100.0/24"]


@requires_lapi
def test_a_wrong_bouncer_key_is_refused_without_showing_it(lapi: LapiProcess) -> None:
    with pytest.raises(LapiError, match=r"refused the bouncer key \(403") as caught:
        Lapi(lapi.url, bouncer_key="not-the-key-123").stream(startup=True)
    assert "not-the-key-123" not in str(caught.value)


@requires_lapi
def test_machine_pushes_an_alert_and_deletes_its_decision(lapi: LapiProcess) -> None:
    lapi.add_machine("mx1", "mx1-password-0123456789")
    client = Lapi(lapi.url, machine_id="mx1", machine_password="mx1-password-0123456789")
    now = time.time()
    body = alert(Block("192.0.2.7", now, now + 3600, "score", 30, ("postfix.sasl",), 1, 30),
                 3, now)
    assert body is not None
    [alert_id] = client.post_alerts([body])
    [(decision_id, duration)] = client.alert_decisions(alert_id)
    assert 3590 < go_duration(duration) <= 3600
    [listed] = lapi.decisions("--origin", "syslogban")
    assert (listed["id"], listed["value"], listed["scenario"]) == (
        decision_id, "192.0.2.7", "syslogban/postfix.sasl")
    client.delete_decision(decision_id)
    client.delete_decision(decision_id)  # gone already: fine
    assert lapi.decisions("--origin", "syslogban") == []


@requires_lapi
def test_the_token_is_renewed(lapi: LapiProcess) -> None:
    lapi.add_machine("mx1", "mx1-password-0123456789")
    client = Lapi(lapi.url, machine_id="mx1", machine_password="mx1-password-0123456789")
    client.login()
    first = client._token
    client._token_end = time.time() + 30  # within a minute of its end: renewed first
    assert client.post_alerts([]) == []
    assert client._token_end > time.time() + 600
    client._token = first[:-4] + "AAAA"  # refused: logs in again, once
    assert client.post_alerts([]) == []
    assert client._token and client._token != first[:-4] + "AAAA"


@requires_lapi
def test_a_wrong_password_names_the_machine_not_the_password(lapi: LapiProcess) -> None:
    lapi.add_machine("mx1", "mx1-password-0123456789")
    client = Lapi(lapi.url, machine_id="mx1", machine_password="wrong-password-987")
    with pytest.raises(LapiError, match="refused the machine 'mx1'") as caught:
        client.post_alerts([])
    assert "wrong-password-987" not in str(caught.value)


@requires_lapi
def test_a_stopped_lapi_is_one_clear_error(lapi: LapiProcess) -> None:
    key = lapi.add_bouncer("mx2")
    lapi.stop()
    with pytest.raises(LapiError, match=r"cannot GET /v1/decisions/stream: .*refused"):
        Lapi(lapi.url, bouncer_key=key, timeout=2).stream(startup=True)


@pytest.fixture()
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@requires_lapi
def test_https_verifies_the_certificate(certificate: tuple[Path, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    instance = LapiProcess(tls=certificate)
    try:
        instance.start()
        key = instance.add_bouncer("mx2")
        with pytest.raises(LapiError, match="TLS certificate is not trusted"):
            Lapi(instance.url, bouncer_key=key).stream(startup=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        assert Lapi(instance.url, bouncer_key=key).stream(startup=True) == {
            "new": None, "deleted": None}
    finally:
        instance.close()


class _Odd(http.server.BaseHTTPRequestHandler):
    """An HTTP server that is not a good LAPI: errors and garbage."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        status, body = {"/v1/decisions/stream?startup=true&dedup=false&scopes=ip%2Crange":
                        (500, b'{"message": "database is locked\\u001b[2J"}')}.get(
                            self.path, (200, b"<html>not json</html>"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def odd_server() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_error_answers_carry_the_lapis_message_printable(odd_server: str) -> None:
    with pytest.raises(LapiError, match=r"answered 500: database is locked \[2J$"):
        Lapi(odd_server, bouncer_key="k").stream(startup=True)
    with pytest.raises(LapiError, match="is not JSON"):
        Lapi(odd_server, bouncer_key="k").stream(startup=False)
