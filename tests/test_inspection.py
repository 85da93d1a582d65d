"""The inspection queue on its own: what a check that cannot run hands back, without a station."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
from PIL import Image

from lineguard.decision import CheckOutcome, Decision
from lineguard.station.checks import CheckRun
from lineguard.station.inspection import Inspection
from lineguard.station.sources import Frame


class _Runner:
    """Stands in for a CheckRunner: scores the image's mean, or raises when told to."""

    def __init__(self, name: str = "surface", fail: bool = False) -> None:
        self.name, self.fail, self.seen = name, fail, 0

    def run(self, image: np.ndarray, part_id: str = "") -> CheckRun:
        self.seen += 1
        if self.fail:
            raise RuntimeError("model blew up")
        return CheckRun(CheckOutcome(self.name, Decision.OK, float(image.mean())))


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _inspection(size: int = 4, open_uids: set[str] | None = None):
    delivered: dict[str, CheckRun] = {}
    counts: dict[str, int] = {}

    def deliver(uid: str, run: CheckRun) -> None:
        delivered[uid] = run

    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    def is_open(uid: str) -> bool:
        return open_uids is None or uid in open_uids

    return Inspection(size, 0.05, is_open, deliver, count), delivered, counts


def _drain(inspection: Inspection) -> None:
    halt = threading.Event()
    worker = threading.Thread(target=inspection.work, args=(halt,))
    worker.start()
    end = time.monotonic() + 5
    while not inspection.idle and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.1)  # the last item taken is still being run
    halt.set()
    worker.join(5)


def test_a_full_queue_fails_the_check_as_overload_and_keeps_the_image() -> None:
    inspection, delivered, counts = _inspection(size=1)
    runner = _Runner()
    data = _png(10)
    inspection.submit("a", runner, Frame("cam", 0, None, "a.png", data=data), backpressure=False)
    inspection.submit("b", runner, Frame("cam", 1, None, "b.png", data=data), backpressure=True)
    assert inspection.depth == 1 and counts == {"overload": 1}
    run = delivered["b"]
    assert not run.outcome.valid and run.outcome.reason.startswith("overload")
    assert run.unjudged == data  # the part that could not be judged still keeps what was read


def test_unreadable_images_and_raising_models_become_failed_runs_not_dead_workers() -> None:
    inspection, delivered, _ = _inspection()
    inspection.submit("cut", _Runner(), Frame("cam", 0, None, "cut.png", data=_png(5)[:40]), False)
    inspection.submit("bug", _Runner(fail=True), Frame("cam", 1, None, "b.png", data=_png(5)), False)
    inspection.submit("ok", _Runner(), Frame("cam", 2, None, "ok.png", data=_png(7)), False)
    inspection.submit("lost", _Runner(), Frame("cam", 3, None, "cam 3", error="timeout"), False)
    _drain(inspection)
    assert delivered["cut"].outcome.reason.startswith("decode error")
    assert delivered["bug"].outcome.reason == "internal error: model blew up"
    assert delivered["lost"].outcome.reason == "acquisition: timeout"
    assert all(not delivered[u].outcome.valid for u in ("cut", "bug", "lost"))
    assert delivered["ok"].outcome.score == 7.0  # the worker lived on past the model's exception


def test_a_part_decided_at_its_deadline_is_not_inspected_late() -> None:
    inspection, delivered, counts = _inspection(open_uids={"live"})
    runner = _Runner()
    inspection.submit("late", runner, Frame("cam", 0, None, "l.png", data=_png(1)), False)
    inspection.submit("live", runner, Frame("cam", 1, None, "v.png", data=_png(2)), False)
    _drain(inspection)
    assert set(delivered) == {"live"} and counts == {"stale_skipped": 1} and runner.seen == 1
