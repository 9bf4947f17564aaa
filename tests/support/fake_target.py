"""A homeserver stand-in on a socket, for what a real target would not do."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable

# The raw HTTP response to a request, in chunks; None never answers.
Answer = Callable[[bytes], Iterable[bytes] | None]


class FakeTarget:
    """A homeserver stand-in: records each request that arrives and answers
    with ``answer(request)``; without ``answer`` it never answers (a hanging
    target)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self._answer = answer
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.received: list[bytes] = []
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(
                target=self._handle, args=(connection,), daemon=True
            ).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(1)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not _has_body(data):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        self.received.append(data)
        chunks = self._answer(data) if self._answer is not None else None
        if chunks is None:
            return
        try:
            connection.settimeout(30)
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:
            pass  # the portal stopped reading
        finally:
            connection.close()

    def close(self) -> None:
        self._socket.close()
        for connection in self._connections:
            connection.close()


def _has_body(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True
