"""Steering a campaign from another process.

The engine process serves ``control.sock`` in the campaign directory: a Unix socket (mode
0600, and only peers of the same user are answered) that takes one JSON line per
connection, either a ``Command`` or ``{"query": "status"}``, and answers one JSON line,
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Events need no socket: a client
follows ``journal.jsonl`` with ``JournalFollower``. So any number of cockpits can watch one
campaign, and the engine never waits on a slow client.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from engine.control.events import Command, Event

SOCKET_NAME = "control.sock"
LOG_NAME = "engine.log"
MAX_REQUEST = 1 << 20
_SUN_PATH_MAX = 100  # AF_UNIX paths are limited to 107 bytes on Linux


class ControlError(RuntimeError):
    """No engine answers, or it refused the command; the message is one line."""


def socket_path(directory: Path) -> Path:
    return Path(directory) / SOCKET_NAME


@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[str]:
    """A name for ``path`` short enough for AF_UNIX: itself, or a /proc/self/fd alias of its folder."""
    if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def request(directory: Path, payload: dict, timeout: float = 10.0) -> dict:
    """Send one request to the engine serving ``directory`` and return its reply."""
    path = socket_path(directory)
    if not path.exists():
        raise ControlError(f"no engine is serving {directory} (no {SOCKET_NAME}; is the campaign running?)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _addressable(path) as address:
                sock.connect(address)
            sock.sendall((json.dumps(payload) + "\n").encode())
            reply = _read_line(sock)
        except (ConnectionRefusedError, FileNotFoundError):
            raise ControlError(
                f"the engine of {directory.name} is not running (stale {SOCKET_NAME})"
            ) from None
        except PermissionError:
            raise ControlError(
                f"not allowed to steer {directory.name}: {SOCKET_NAME} belongs to another user"
            ) from None
        except (TimeoutError, OSError) as error:
            raise ControlError(f"the engine of {directory.name} did not answer: {error}") from None
    try:
        answer = json.loads(reply)
    except json.JSONDecodeError:
        raise ControlError(f"the engine of {directory.name} sent a malformed reply") from None
    return answer


def send_command(directory: Path, command: Command, timeout: float = 10.0) -> dict:
    answer = request(directory, json.loads(command.to_json()), timeout)
    if not answer.get("ok"):
        raise ControlError(answer.get("error") or "the engine refused the command")
    return answer


def engine_status(directory: Path, timeout: float = 5.0) -> dict:
    """``{"ok", "pid", "tag", "state", "paused", "approval", "awaiting", "running"}`` from a live engine."""
    return request(directory, {"query": "status"}, timeout)


def engine_alive(directory: Path) -> bool:
    try:
        return bool(engine_status(directory, timeout=2.0).get("ok"))
    except ControlError:
        return False


def _read_line(sock: socket.socket) -> str:
    chunks, size = [], 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > MAX_REQUEST:
            break
    return b"".join(chunks).split(b"\n", 1)[0].decode("utf-8", errors="replace")


class CommandServer:
    """Serves one campaign's ``control.sock`` on daemon threads until ``close()``."""

    def __init__(self, campaign, directory: Path | None = None) -> None:
        self.campaign = campaign
        self.directory = Path(directory or campaign.dir)
        self.path = socket_path(self.directory)
        self._sock: socket.socket | None = None
        self._closed = threading.Event()

    def start(self) -> CommandServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if engine_alive(self.directory):
                pid = engine_status(self.directory).get("pid")
                raise ControlError(f"campaign {self.directory.name} is already running (engine pid {pid})")
            self.path.unlink()  # left by an engine that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _addressable(self.path) as address:
            sock.bind(address)
        # Restrict before listen(): nobody can connect to a socket that is not listening yet.
        os.chmod(self.path, 0o600)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept, name="afr-control", daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> CommandServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set() and self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10.0)
            try:
                if not self._same_user(conn):
                    reply = {"ok": False, "error": "only the campaign's owner may steer it"}
                else:
                    reply = self.handle(_read_line(conn))
                conn.sendall((json.dumps(reply, default=str) + "\n").encode())
            except OSError:
                pass  # the client went away; nothing to answer

    @staticmethod
    def _same_user(conn: socket.socket) -> bool:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        return uid == os.getuid()

    def handle(self, line: str) -> dict:
        """One request line in, one reply out; never raises."""
        try:
            raw = json.loads(line)
            if raw.get("query") == "status":
                return self.status()
            self.campaign.command(Command.from_json(line))
            return {"ok": True}
        except Exception as error:  # a bad request or a failed command must not take the server down
            text = str(error).strip()
            return {"ok": False, "error": text.splitlines()[0] if text else type(error).__name__}

    def status(self) -> dict:
        campaign = self.campaign
        return {
            "ok": True,
            "pid": os.getpid(),
            "tag": campaign.tag,
            "state": campaign.state,
            "paused": campaign.paused,
            "approval": campaign.approval,
            "awaiting": sorted(campaign.awaiting),
            "running": sorted(campaign.running),
        }


class JournalFollower:
    """Reads the events appended to a ``journal.jsonl`` since the last read.

    A line still being written (no newline yet) is left for the next read, so a reader
    never sees a torn event.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset

    def changed(self) -> bool:
        try:
            return self.path.stat().st_size > self.offset
        except FileNotFoundError:
            return False

    def lines(self) -> list[bytes]:
        """New complete lines, unparsed (for readers that parse only what they need)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return [line for line in data[:end].split(b"\n") if line.strip()]

    def read(self) -> list[Event]:
        """New complete events."""
        return [event for event in map(parse_event, self.lines()) if event is not None]


def parse_event(line: bytes) -> Event | None:
    try:
        return Event.from_json(line.decode("utf-8"))
    except (ValueError, KeyError):
        return None
