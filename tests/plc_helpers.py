"""A TCP link the tests can cut: what a pulled cable or a rebooting switch does to a PLC link."""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttableLink:
    """Forwards 127.0.0.1:``port`` to ``target``; ``cut()`` drops every open connection and,
    while ``down``, refuses new ones (accepted, then closed at once)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.down = threading.Event()
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cuttable-link").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=2)
                server.settimeout(None)  # idle links (keepalive periods) must not time out here
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self, stay_down: bool = True) -> None:
        with self._lock:
            sockets, self._open = self._open, []
            self.cuts += 1
        if stay_down:
            self.down.set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
