"""Live reports from worker processes to the kernel: "started" and printed lines.

loky hands a task's result back only when it ends. To draw a step as running
the moment a worker takes it, and to show what it prints while it runs, each
worker process also talks to the kernel over a local socket::

    kernel                                        worker process
    ------                                        --------------
    Channel (one per process, started lazily)      report(address, message)
      Listener on a Unix socket, random authkey      one Client per process,
      accept thread -> one thread per worker         opened at first use
      connection: the authkey handshake, then        LineBuffer: printed lines are
      each message -> sink(message)                  sent at most every 0.2 s
    message = (run_token, kind, step, slice, payload)
      kind "start", "printing": payload (worker, time)   kind "log": payload text

The sink is the current run's events queue; a message whose token is not
the current run's (a late line from a cancelled run) is dropped there.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, answer_challenge, deliver_challenge
from typing import Any

Message = tuple[str, str, str, int | None, Any]
Address = tuple[str, bytes]  # (socket path, authkey)


class Channel:
    """The kernel's end: receives messages from any worker, hands them to `sink`."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="nbpar-")
        atexit.register(self._remove)
        self._authkey = secrets.token_bytes(16)
        # The handshake is done per connection, not in accept(): a worker killed
        # halfway through it must not stop the channel for the others.
        self._listener = Listener(os.path.join(self._dir, "channel"), family="AF_UNIX")
        self.sink: Callable[[Message], None] = lambda message: None
        threading.Thread(target=self._accept, name="nbpar-channel", daemon=True).start()

    def _remove(self) -> None:
        self._listener.close()  # removes the socket file
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def address(self) -> Address:
        return (str(self._listener.address), self._authkey)

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # a connection that failed as it was made (the listener lives as long as the process)
                time.sleep(0.01)
                continue
            threading.Thread(target=self._read, args=(conn,), name="nbpar-channel-reader", daemon=True).start()

    def _read(self, conn: Connection) -> None:
        with conn:
            try:
                deliver_challenge(conn, self._authkey)
                answer_challenge(conn, self._authkey)
            except (EOFError, OSError, AuthenticationError):
                return  # not one of our workers, or one that died meanwhile
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    return  # the worker exited
                self.sink(message)


_channel: Channel | None = None
_channel_lock = threading.Lock()  # guards _channel


def kernel_channel() -> Channel:
    """This process's channel, started at first use."""
    global _channel
    with _channel_lock:
        if _channel is None:
            _channel = Channel()
        return _channel


# -- the worker's end -------------------------------------------------------------

_client: Connection | None = None
_client_address: Address | None = None
_send_lock = threading.Lock()  # guards _client and sending on it


def report(address: Address, message: Message) -> None:
    """Send one message to the kernel at `address` (from a worker process)."""
    global _client, _client_address
    with _send_lock:
        try:
            if _client is None or _client_address != address:
                _client_address = address
                _client = Client(address[0], family="AF_UNIX")
                answer_challenge(_client, address[1])
                deliver_challenge(_client, address[1])
            _client.send(message)
        except (EOFError, OSError, AuthenticationError):
            _client = None  # the kernel went away: the result still travels through loky


class LineBuffer:
    """Collects a task's printed lines and sends them in batches, at most
    every `interval` seconds, and at `close()`; a timer sends what a quiet
    step printed last."""

    def __init__(self, send: Callable[[str], None], interval: float = 0.2) -> None:
        self._send = send
        self._interval = interval
        self._lines: list[str] = []
        self._last = 0.0
        self._lock = threading.Lock()  # guards _lines, _last and _timer
        self._timer: threading.Timer | None = None

    def write(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            if time.monotonic() - self._last >= self._interval:
                self._flush_locked()
            elif self._timer is None:
                self._timer = threading.Timer(self._interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _flush_locked(self) -> None:
        self._timer = None
        if self._lines:
            text, self._lines = "".join(self._lines), []
            self._send(text)
        self._last = time.monotonic()
