"""Inspection: the bounded queue of check images and the workers that run the checks.

An image comes in with its part and check (``submit``); a worker decodes it, runs the check and
hands the run back (``deliver``). Nothing here decides a part: a check that cannot run — its image
unreadable, the queue full, the model raising — is handed back as a failed run, and the fail-safe
rule turns it into the part's verdict. Bounded on purpose: a full queue fails the check now
(overload) rather than letting parts pile up past their deadline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lineguard.data.image_io import decode_image
from lineguard.decision import CheckOutcome
from lineguard.errors import DataError
from lineguard.station.checks import CheckRun, CheckRunner
from lineguard.station.sources import Frame

log = logging.getLogger("lineguard.station")


@dataclass
class _WorkItem:
    uid: str
    runner: CheckRunner
    frame: Frame


class Inspection:
    def __init__(
        self,
        size: int,
        deadline_s: float,
        is_open: Callable[[str], bool],
        deliver: Callable[[str, CheckRun], None],
        count: Callable[[str], None],
    ) -> None:
        """``is_open(uid)``: the part still waits for its checks; ``deliver(uid, run)``: a check's
        result (or failure); ``count(name)``: one more of a station counter."""
        self._queue: queue.Queue[_WorkItem] = queue.Queue(maxsize=size)
        self.deadline_s = deadline_s
        self._is_open, self._deliver, self._count = is_open, deliver, count

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        return self._queue.empty()

    def submit(self, uid: str, runner: CheckRunner, frame: Frame, backpressure: bool) -> None:
        """Queue one check's image; a source that can wait (files) waits for room, never past
        the part's deadline; one that cannot fails the check as overload."""
        if frame.error:
            self._deliver(uid, CheckRun(CheckOutcome(runner.name, None, None, f"acquisition: {frame.error}")))
            return
        try:
            if backpressure:
                wait = self.deadline_s - (time.monotonic() - frame.acquired)
                self._queue.put(_WorkItem(uid, runner, frame), timeout=max(wait, 0.001))
            else:
                self._queue.put_nowait(_WorkItem(uid, runner, frame))
        except queue.Full:
            self._count("overload")
            unjudged = frame.data if frame.data is not None else frame.image
            outcome = CheckOutcome(runner.name, None, None, "overload: inspection queue full")
            self._deliver(uid, CheckRun(outcome, unjudged=unjudged))

    def work(self, halt: threading.Event) -> None:
        """One worker: until ``halt``, take an image, run its check, deliver the run."""
        while not halt.is_set():
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if not self._is_open(item.uid):
                self._count("stale_skipped")  # decided at its deadline already; save the time
                continue
            frame = item.frame
            try:
                image = (
                    frame.image if frame.image is not None else decode_image(frame.data or b"", frame.name)
                )
            except DataError as exc:
                outcome = CheckOutcome(item.runner.name, None, None, f"decode error: {exc}")
                self._deliver(item.uid, CheckRun(outcome))
                continue
            try:
                run = item.runner.run(image, frame.part_id or "")
            except Exception as exc:  # a bug must cost this check, never the worker thread
                log.exception("check %s", item.runner.name)
                run = CheckRun(CheckOutcome(item.runner.name, None, None, f"internal error: {exc}"))
            self._deliver(item.uid, run)
