"""Control: the daemon's unix socket, and the client the CLI talks through.

Rules of this file:
* Transport only: a JSON object per line each way. What a command means is
  the daemon's business (a handler it passes in).
* The socket is private: mode 0600, or 0660 for a configured group. A stale
  socket file left by a dead daemon is replaced; a live one is not touched.
* A client can hurt nobody: requests are bounded in size and time, clients
  in number, and garbage gets an error answer, not a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import SyslogbanError

log = logging.getLogger("syslogban.control")

MAX_REQUEST = 64 * 1024
MAX_CLIENTS = 32
TIMEOUT = 10.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(SyslogbanError):
    """The daemon cannot be reached, or answered with an error."""


class ControlServer:
    def __init__(self, path: str, handler: Handler, group: str = "") -> None:
        self.path = path
        self.handler = handler
        self.group = group
        self.clients = asyncio.Semaphore(MAX_CLIENTS)
        self.refused = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        _replace_stale(self.path)
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o755, exist_ok=True)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, self.path,
                                                           limit=MAX_REQUEST)
        finally:
            os.umask(old)
        if self.group:
            os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            os.chmod(self.path, 0o660)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.clients.locked():
            self.refused += 1
            await _answer(writer, {"ok": False, "error": "too many control clients"})
            return
        async with self.clients:
            try:
                line = await asyncio.wait_for(reader.readline(), TIMEOUT)
                request = json.loads(line)
                if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                    raise ValueError("a request is a JSON object with a 'command'")
                response = await self.handler(request)
            except (asyncio.LimitOverrunError, ValueError, RecursionError) as exc:
                # RecursionError: JSON nested deeper than the parser's stack
                response = {"ok": False, "error": f"bad request: {exc}"[:200]}
            except asyncio.TimeoutError:
                response = {"ok": False, "error": "request not received in time"}
            except ConnectionError:
                return
            await _answer(writer, response)


async def _answer(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
        writer.write(json.dumps(response, default=str).encode() + b"\n")
        await asyncio.wait_for(writer.drain(), TIMEOUT)
    writer.close()


def _replace_stale(path: str) -> None:
    """Removes a socket file nobody listens on; refuses to steal a live one, and
    never removes anything that is not a socket (a mistyped `control` path)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path}: exists and is not a socket: the control socket "
                           "needs a path of its own (control = ...)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise ControlError(f"{path}: another syslogban is running (its control socket answers)")


def request(path: str, command: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
    """Sends one command to the daemon and returns its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(json.dumps(command).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                piece = sock.recv(1 << 16)
                if not piece:
                    break
                data += piece
        except FileNotFoundError:
            raise ControlError(f"{path}: no such control socket (is syslogban running? "
                               "--control PATH)") from None
        except PermissionError:
            raise ControlError(f"{path}: permission denied (root or the control group "
                               "only)") from None
        except ConnectionRefusedError:
            raise ControlError(_refused(path)) from None
        except TimeoutError:
            raise ControlError(f"{path}: syslogban did not answer within "
                               f"{timeout:g} s (busy or stuck?)") from None
        except OSError as exc:
            raise ControlError(f"{path}: {exc.strerror or exc}") from None
    try:
        answer = json.loads(data)
        if not isinstance(answer, dict):
            raise ValueError("not an object")
    except ValueError:
        raise ControlError(f"{path}: the daemon gave no answer") from None
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "the daemon refused")))
    return dict(answer)


def _refused(path: str) -> str:
    """Why nobody answers at `path`, for the admin who asked."""
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        is_socket = True
    if not is_socket:
        return (f"{path}: not a socket (--control names the daemon's control socket, "
                "the 'control' key of its configuration)")
    return f"{path}: nobody answers (syslogban is not running; the socket is left over)"
