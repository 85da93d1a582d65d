"""The station's parts in flight: how an image finds its part, and that a recorded part leaves
nothing behind (pure logic, no threads)."""

from __future__ import annotations

from lineguard.station.parts import REMEMBER_CLOSED, PartInFlight, PartsInFlight
from lineguard.station.sources import Frame

TOP, LINE = "top", "linescan"


def frame(source: str, seq: int = 0, trigger: int | None = None) -> Frame:
    return Frame(source, seq, None, f"{source} frame {seq}", trigger=trigger)


def test_a_triggered_image_finds_its_part_once_and_a_free_camera_the_oldest_waiting():
    recipe, other = object(), object()
    parts = PartsInFlight()
    first = parts.open(PartInFlight("u0", recipe, 0.0, trigger=0))
    second = parts.open(PartInFlight("u1", recipe, 1.0, trigger=1))
    parts.open(PartInFlight("u2", other, 2.0, trigger=2))
    assert parts.waiting_for(frame(TOP, trigger=1), recipe) is second
    second.sources_taken.add(TOP)
    assert parts.waiting_for(frame(TOP, trigger=1), recipe) is None  # a second image of that source
    assert parts.waiting_for(frame(TOP, trigger=9), recipe) is None  # no such trigger
    # A free-running camera beside the triggered one: the oldest part of its recipe still without it.
    assert parts.waiting_for(frame(LINE), recipe) is first
    first.sources_taken.add(LINE)
    assert parts.waiting_for(frame(LINE), recipe) is second
    assert sorted(map(id, parts.recipes())) == sorted(map(id, [recipe, recipe, other]))


def test_a_recorded_part_leaves_no_index_behind_and_late_frame_counts_are_told():
    parts = PartsInFlight()
    parts.open(PartInFlight("t", "r", 0.0, trigger=5))
    free = parts.open(PartInFlight("f", "r", 0.0, seq_key=("r", 7)))
    assert parts.by_frame_count(("r", 7)) is free and len(parts) == 2
    assert parts.close("f") is free and parts.close("t") is not None
    assert not parts and parts.close("f") is None
    assert parts.by_frame_count(("r", 7)) is None and parts.waiting_for(frame(TOP, trigger=5), "r") is None
    assert parts.recently_closed(7) and not parts.recently_closed(8)
    for seq in range(8, 8 + REMEMBER_CLOSED):  # bounded: the station runs for months
        parts.open(PartInFlight(f"f{seq}", "r", 0.0, seq_key=("r", seq)))
        parts.close(f"f{seq}")
    assert not parts.recently_closed(7) and parts.recently_closed(8 + REMEMBER_CLOSED - 1)
