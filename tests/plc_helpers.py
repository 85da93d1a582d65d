"""What the PLC tests share: a TCP link they can cut (what a pulled cable or a rebooting switch
does to a PLC link) and the PLC program's handshake sequences over any memory layout."""

from __future__ import annotations

import contextlib
import socket
import threading

from station_helpers import wait_for


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


class PlcProgram:
    """The PLC program's side of the handshake; a subclass maps the signals onto its memory:
    ``bit(n, value)`` sets command bit n (0 Trigger, 1 ResultAck, 2 ErrorReset, 3 JobChange),
    ``part_id`` / ``job`` write those fields, ``status()`` decodes the station's signals."""

    def bit(self, n: int, value: bool) -> None:
        raise NotImplementedError

    def part_id(self, text: str) -> None:
        raise NotImplementedError

    def job(self, number: int) -> None:
        raise NotImplementedError

    def status(self) -> dict:
        raise NotImplementedError

    def trigger(self, part_id: str) -> None:
        self.part_id(part_id)  # the part ID first, then the trigger (as the docs say)
        self.bit(0, True)
        wait_for(lambda: self.status()["trigger_ack"], what="TriggerAck")
        self.bit(0, False)
        wait_for(lambda: not self.status()["trigger_ack"], what="TriggerAck cleared")

    def take_result(self) -> dict:
        wait_for(lambda: self.status()["result_valid"], what="ResultValid")
        got = self.status()
        self.bit(1, True)
        wait_for(lambda: not self.status()["result_valid"], what="ResultValid cleared")
        self.bit(1, False)
        return got

    def change_job(self, number: int) -> dict:
        self.job(number)
        self.bit(3, True)
        wait_for(lambda: self.status()["job_ack"], what="JobAck")
        got = self.status()
        self.bit(3, False)
        wait_for(lambda: not self.status()["job_ack"], what="JobAck cleared")
        return got

    def reset_error(self) -> None:
        self.bit(2, True)
        wait_for(lambda: not self.status()["error"], what="Error cleared")
        self.bit(2, False)
