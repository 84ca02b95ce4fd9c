"""A hostile or broken CrowdSec LAPI: answers that never end, JSON nested past
the parser's stack, a LAPI that is down. The bridge must stay bounded in
time, requests and CPU, and the daemon's stop must not wait for it.

The peer is a small HTTP server of the test's own: what it sends is exactly
what a real LAPI never would (a real one is in test_crowdsec_lapi.py)."""

from __future__ import annotations

import asyncio
import http.server
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from syslogban.crowdsec.bridge import CrowdSecBridge
from syslogban.crowdsec.lapi import Lapi, LapiError
from syslogban.crowdsec.settings import CrowdSecSettings


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    mode = ""   # the class of the server's handler: one per test
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).hits += 1
        try:
            if self.mode == "nested":
                body = b"[" * 200_000
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.mode == "drip-headers":  # a header line a second, for ever
                self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                while True:
                    self.wfile.write(b"X-Slow: yes\r\n")
                    self.wfile.flush()
                    time.sleep(0.5)
            elif self.mode == "drip-body":  # a byte of the answer a second, for ever
                self.send_response(200)
                self.end_headers()
                while True:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
        except OSError:
            pass  # the client gave up: that is the point

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture()
def hostile(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Hostile]]]:
    handler = type("Handler", (_Hostile,), {"mode": request.param, "hits": 0})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("hostile", ["nested"], indirect=True)
def test_json_nested_past_the_recursion_limit_is_no_answer(
        hostile: tuple[str, type[_Hostile]]) -> None:
    with pytest.raises(LapiError, match="is not JSON"):
        Lapi(hostile[0], bouncer_key="k").stream(startup=True)


@pytest.mark.parametrize("hostile", ["drip-headers", "drip-body"], indirect=True)
def test_an_answer_that_never_ends_is_given_up_at_the_deadline(
        hostile: tuple[str, type[_Hostile]]) -> None:
    """A byte every half second never trips the socket's 10 s timeout."""
    started = time.monotonic()
    with pytest.raises(LapiError, match="no whole answer to GET /v1/decisions/stream in time"):
        Lapi(hostile[0], bouncer_key="k", deadline=1.0).stream(startup=True)
    assert time.monotonic() - started < 3.0


def _bridge(url: str) -> CrowdSecBridge:
    return CrowdSecBridge(CrowdSecSettings(url, "key", "", "", poll=1.0), None)


@pytest.mark.parametrize("hostile", ["nested"], indirect=True)
def test_an_answer_nothing_expected_is_retried_with_back_off(
        hostile: tuple[str, type[_Hostile]]) -> None:
    """Before: the worker went round at once after anything but a LapiError
    (865 requests and error lines in 3 s)."""
    url, handler = hostile

    async def scenario() -> dict[str, object]:
        bridge = _bridge(url)
        await bridge.start(lambda decisions, complete: None)
        await asyncio.sleep(3.0)
        status = bridge.status()
        await bridge.stop()
        return status

    status = asyncio.run(scenario())
    assert handler.hits <= 3
    assert status["reachable"] is False and "not JSON" in str(status["last_error"])


def test_a_lapi_that_is_down_costs_no_cpu() -> None:
    """Before: while waiting to retry, the worker spun on the daemon's loop
    (193,675 rounds and a whole core in 5 s)."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"

        async def scenario() -> float:
            bridge = _bridge(url)
            await bridge.start(lambda decisions, complete: None)
            await asyncio.sleep(0.2)
            cpu = time.process_time()
            await asyncio.sleep(2.0)
            cpu = time.process_time() - cpu
            await bridge.stop()
            return cpu

        assert asyncio.run(scenario()) < 0.5


@pytest.mark.parametrize("hostile", ["drip-body"], indirect=True)
def test_stopping_does_not_wait_for_an_answer_that_never_ends(
        hostile: tuple[str, type[_Hostile]]) -> None:
    """Before: asyncio.run waited for the worker's thread, for ever (the daemon
    never exited)."""
    async def scenario() -> None:
        bridge = _bridge(hostile[0])
        await bridge.start(lambda decisions, complete: None)
        await asyncio.sleep(0.5)
        await bridge.stop()

    run = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    run.start()
    run.join(timeout=6.0)  # STOP_BUDGET is 3 s
    assert not run.is_alive()
