"""The CrowdSec Local API over HTTP: the few calls the bridge makes.

Rules of this file:
* A thin shell: requests out, JSON values in, LapiError (one line an admin
  understands) for anything else. It decides nothing.
* Blocking calls of the standard library (http.client), made from a worker
  thread by the bridge: four endpoints, a request every few seconds, need
  no HTTP library. No proxy from the environment is used.
* https verifies the certificate and the host name against the system's
  trust store (SSL_CERT_FILE / SSL_CERT_DIR choose another), always.
* A call ends within `deadline` whatever the LAPI does: a server that
  answers a byte every few seconds never trips the socket's timeout, so a
  timer cuts the connection (the bridge's worker, and the daemon's exit,
  would wait for it forever). Its answer is bounded (MAX_ANSWER), and so is
  the nesting of its JSON (deeper than the parser's stack is no answer).
* The bouncer key and the machine's password and token go in headers and
  bodies only, never in a URL or a message.

Routes (crowdsecurity/crowdsec pkg/apiserver/controllers/controller.go, the
same from 1.4 to today): GET /v1/decisions/stream (X-Api-Key), POST
/v1/watchers/login (a JWT, renewed a minute before it expires or when
refused), POST /v1/alerts, GET /v1/alerts/{id}, DELETE /v1/decisions/{id}
(Authorization: Bearer).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from .. import __version__
from ..errors import SyslogbanError

TIMEOUT = 10.0          # seconds the LAPI may stay silent
DEADLINE = 60.0         # seconds a whole call may take
MAX_ANSWER = 256 << 20  # bytes: a startup stream with the community lists is a few MB
RENEW_BEFORE = 60.0     # seconds before the token's end


class LapiError(SyslogbanError):
    """The LAPI cannot be reached, or refused or misunderstood a request."""

    def __init__(self, message: str, rejected: bool = False) -> None:
        super().__init__(message)
        self.rejected = rejected  # the LAPI read the request and said no (4xx): no retry helps


class Lapi:
    def __init__(self, url: str, bouncer_key: str = "", machine_id: str = "",
                 machine_password: str = "", timeout: float = TIMEOUT,
                 deadline: float = DEADLINE) -> None:
        parts = urlsplit(url)
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/") + "/"
        self.bouncer_key = bouncer_key
        self.machine_id = machine_id
        self.machine_password = machine_password
        self.timeout = timeout
        self.deadline = deadline
        self._context = ssl.create_default_context() if self.https else None
        self._token = ""
        self._token_end = 0.0
        self._current: _Deadline | None = None  # the call in progress

    def abort(self) -> None:
        """Ends the call in progress now (from another thread): it raises LapiError."""
        current = self._current
        if current is not None:
            current.cut()

    # ------------------------------------------------------------- bouncer

    def stream(self, startup: bool) -> Any:
        """The decision stream: everything live (startup) or what changed since the last call."""
        query = urlencode({"startup": "true" if startup else "false", "dedup": "false",
                           "scopes": "ip,range"})
        return self._call("GET", f"v1/decisions/stream?{query}", None,
                          {"X-Api-Key": self.bouncer_key}, "the bouncer key")

    # ------------------------------------------------------------- machine

    def login(self) -> None:
        answer = self._call("POST", "v1/watchers/login",
                            {"machine_id": self.machine_id, "password": self.machine_password},
                            {}, f"the machine {self.machine_id!r} and its password")
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise LapiError(f"CrowdSec LAPI {self.url}: the login answer holds no token")
        self._token = token
        self._token_end = _expiry(answer.get("expire"), time.time())

    def post_alerts(self, alerts: list[dict[str, Any]]) -> list[int]:
        """The ids of the alerts the LAPI created, in order."""
        answer = self._machine("POST", "v1/alerts", alerts)
        try:
            return [int(i) for i in answer]
        except (TypeError, ValueError):
            raise LapiError(f"CrowdSec LAPI {self.url}: POST /v1/alerts answered "
                            f"{str(answer)[:80]!r}, not a list of ids") from None

    def alert_decisions(self, alert_id: int) -> list[tuple[int, str]]:
        """(id, duration left) of the decisions of one alert."""
        answer = self._machine("GET", f"v1/alerts/{int(alert_id)}", None)
        decisions = answer.get("decisions") if isinstance(answer, dict) else None
        try:
            return [(int(d["id"]), str(d["duration"])) for d in decisions or []]
        except (TypeError, KeyError, ValueError):
            raise LapiError(f"CrowdSec LAPI {self.url}: alert {alert_id} has no readable "
                            "decisions") from None

    def delete_decision(self, decision_id: int) -> None:
        """Ends one decision now (gone already is fine)."""
        self._machine("DELETE", f"v1/decisions/{int(decision_id)}", None, missing_ok=True)

    def _machine(self, method: str, path: str, body: Any, missing_ok: bool = False) -> Any:
        if not self._token or time.time() > self._token_end - RENEW_BEFORE:
            self.login()
        credential = f"the token of the machine {self.machine_id!r}"
        try:
            return self._call(method, path, body, {"Authorization": f"Bearer {self._token}"},
                              credential, missing_ok, token=True)
        except _TokenRefusedError:  # expired early (the LAPI restarted, new secret): again
            self.login()
            return self._call(method, path, body, {"Authorization": f"Bearer {self._token}"},
                              credential, missing_ok)

    # ---------------------------------------------------------------- HTTP

    def _call(self, method: str, path: str, body: Any, headers: dict[str, str],
              credential: str, missing_ok: bool = False, token: bool = False) -> Any:
        route = path.split("?")[0]
        where = f"CrowdSec LAPI {self.url}"
        data = None if body is None else json.dumps(body).encode()
        headers = {**headers, "User-Agent": f"syslogban/{__version__}",
                   "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        connection = (http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                  context=self._context) if self.https
                      else http.client.HTTPConnection(self.host, self.port,
                                                      timeout=self.timeout))
        deadline = self._current = _Deadline(self.deadline)
        late = LapiError(f"{where}: no whole answer to {method} /{route} in time (it may "
                         f"take {self.deadline:g} s)")
        try:
            connection.connect()
            deadline.watch(connection.sock)
            connection.request(method, self.base + path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER + 1)
        except ssl.SSLCertVerificationError as exc:
            raise LapiError(f"{where}: its TLS certificate is not trusted: "
                            f"{exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise late from None
            raise LapiError(f"{where}: cannot {method} /{route}: "
                            f"{exc.strerror or exc if isinstance(exc, OSError) else exc}") \
                from None
        finally:
            deadline.cancel()
            self._current = None
            connection.close()
        if deadline.expired:  # an answer without a length, read up to the cut
            raise late
        if len(raw) > MAX_ANSWER:
            raise LapiError(f"{where}: the answer to /{route} is larger than "
                            f"{MAX_ANSWER >> 20} MiB")
        if response.status == 404 and missing_ok:
            return None
        if response.status in (401, 403):
            if token:
                raise _TokenRefusedError()
            raise LapiError(f"{where}: refused {credential} ({response.status} on /{route})")
        if not 200 <= response.status < 300:
            raise LapiError(f"{where}: /{route} answered {response.status}: "
                            f"{_message(raw)}", rejected=400 <= response.status < 500)
        try:
            return json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):  # nested deeper than the parser's stack
            raise LapiError(f"{where}: the answer to /{route} is not JSON") from None


class _Deadline:
    """Cuts a connection still busy after `seconds` (or when told to): shutdown(2)
    wakes the thread blocked reading it, close(2) would not."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self.cut)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        """The connection's socket (http.client lets go of it once an answer
        that ends with the connection begins: it is kept here)."""
        self._sock = sock
        if self.expired:
            self.cut()

    def cut(self) -> None:
        self.expired = True
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # socket.socket's: also under TLS
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _TokenRefusedError(Exception):
    """The token was refused: log in again once."""


def _message(raw: bytes) -> str:
    """The LAPI's own error message, printable and short."""
    try:
        text = str(json.loads(raw).get("message", ""))
    except (ValueError, AttributeError):
        text = raw.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text)[:200] or "no message"


def _expiry(text: Any, now: float) -> float:
    """When a token ends ("2026-12-03T10:39:24Z"); in ten minutes when unreadable."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now + 600.0
