"""Live reports from worker processes to the kernel: "started" and printed lines.

loky hands a task's result back only when it ends. To draw a step as running
the moment a worker takes it, and to show what it prints while it runs, each
worker process also talks to the kernel over a local socket::

    kernel                                        worker process
    ------                                        --------------
    Channel (one per process, started lazily)      report(address, message)
      Listener on a Unix socket in the kernel's      one Client per process,
        private folder (folders.py), random authkey  opened at first use
      accept thread -> one thread per worker         LineBuffer: printed lines are
      connection: the authkey handshake, then        sent at most every 0.2 s
      each message -> sink(message)
    message = (run_token, kind, step, slice, payload)
      kind "start", "printing": payload (worker, time)   kind "log": payload text

The sink is the current run's events queue; a message whose token is not
the current run's (a late line from a cancelled run) is dropped there.

A connection that does not answer the handshake within `HANDSHAKE_TIMEOUT`
seconds is closed, and at most `HANDSHAKING` connections are in their
handshake at once (one more is closed at once): connections that never
answer cannot pin the kernel's threads. A worker whose connection was
closed tries again with its next message (its lines also travel with its
result).
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, answer_challenge, deliver_challenge
from typing import Any

from . import folders

HANDSHAKE_TIMEOUT = 5.0  # seconds a new connection has to answer (a worker's takes milliseconds)
HANDSHAKING = 8  # connections in their handshake at once

Message = tuple[str, str, str, int | None, Any]
Address = tuple[str, bytes]  # (socket path, authkey)


class Channel:
    """The kernel's end: receives messages from any worker, hands them to `sink`."""

    def __init__(self) -> None:
        self._authkey = secrets.token_bytes(16)
        # The handshake is done per connection, not in accept(): a worker killed
        # halfway through it must not stop the channel for the others.
        self._listener = Listener(os.path.join(folders.private(), "channel"), family="AF_UNIX")
        atexit.register(self._listener.close)  # removes the socket file (before folders' atexit removes the folder)
        self._handshaking = threading.BoundedSemaphore(HANDSHAKING)
        self.sink: Callable[[Message], None] = lambda message: None
        threading.Thread(target=self._accept, name="nbpar-channel", daemon=True).start()

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
            if not self._handshaking.acquire(blocking=False):
                conn.close()  # HANDSHAKING connections have not answered yet
                continue
            threading.Thread(target=self._read, args=(conn,), name="nbpar-channel-reader", daemon=True).start()

    def _read(self, conn: Connection) -> None:
        with conn:
            try:
                _receive_timeout(conn, HANDSHAKE_TIMEOUT)
                deliver_challenge(conn, self._authkey)
                answer_challenge(conn, self._authkey)
                _receive_timeout(conn, 0.0)  # a worker may be quiet for hours
            except (EOFError, OSError, AuthenticationError):
                return  # not one of our workers, one that died meanwhile, or silent (timed out)
            finally:
                self._handshaking.release()
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    return  # the worker exited
                self.sink(message)


def _receive_timeout(conn: Connection, seconds: float) -> None:
    """Make a blocking receive on `conn` fail (OSError) after `seconds`
    (0: never). SO_RCVTIMEO, not a socket timeout: that would make the
    connection's file non-blocking."""
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:  # the same socket, through a second descriptor
        sock.setblocking(True)  # (a default timeout, socket.setdefaulttimeout, made it non-blocking)
        whole = int(seconds)
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
        )


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
