"""The parts a station holds between opening and record: one ``PartInFlight`` each, and the
indexes by which an arriving image finds its part (trigger number, free-running frame count).

Not thread-safe by itself: the station calls it under its lock. A part leaves whole when it is
recorded (``close``), its index entries with it, so nothing about a part can outlive it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineguard.station.checks import CheckRun
    from lineguard.station.sources import Frame

REMEMBER_CLOSED = 10_000  # recently recorded frame counts kept, to tell a late image from a new part


@dataclass
class PartInFlight:
    """Everything the station holds about one part from its opening to its record."""

    uid: str
    recipe: Any  # the station's loaded recipe it was opened under (a changeover does not move it)
    started: float  # monotonic: when its image was taken or its trigger came
    trigger: int | None = None  # the trigger number that opened it
    seq_key: tuple[str, int] | None = None  # free-running: (recipe, frame count) that pairs its images
    sources_taken: set[str] = field(default_factory=set)  # triggered: sources whose image it has
    runs: dict[str, CheckRun] = field(default_factory=dict)  # check -> what it saw (image, map)
    on_recorded: list[Callable[[], None]] = field(default_factory=list)  # its sources, once recorded
    # Cascades, per detailed check: its image waiting for the pre-screen's decision, or that
    # decision (run it?) waiting for the image.
    deferred: dict[str, Frame] = field(default_factory=dict)
    cascade: dict[str, bool] = field(default_factory=dict)


class PartsInFlight:
    def __init__(self) -> None:
        self._parts: dict[str, PartInFlight] = {}
        self._by_trigger: dict[int, str] = {}  # trigger number -> uid (insertion = trigger order)
        self._by_frame_count: dict[tuple[str, int], str] = {}  # (recipe, frame seq) -> uid
        self._closed_counts: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parts)

    def __iter__(self) -> Iterator[PartInFlight]:
        return iter(self._parts.values())

    def open(self, part: PartInFlight) -> PartInFlight:
        self._parts[part.uid] = part
        if part.trigger is not None:
            self._by_trigger[part.trigger] = part.uid
        if part.seq_key is not None:
            self._by_frame_count[part.seq_key] = part.uid
        return part

    def get(self, uid: str) -> PartInFlight | None:
        return self._parts.get(uid)

    def by_frame_count(self, key: tuple[str, int]) -> PartInFlight | None:
        uid = self._by_frame_count.get(key)
        return self._parts[uid] if uid is not None else None

    def recently_closed(self, seq: int) -> bool:
        """A free-running frame count whose part was already recorded (its image came late)."""
        return seq in self._closed_counts

    def waiting_for(self, frame: Frame, recipe: Any) -> PartInFlight | None:
        """The triggered part this image belongs to: its own trigger's, or for a free-running
        camera in a triggered recipe (a line-scan camera on the encoder beside a triggered area
        camera) the oldest part of that recipe still waiting for an image from it."""
        if frame.trigger is not None:
            uid = self._by_trigger.get(frame.trigger)
            part = self._parts.get(uid) if uid is not None else None
            return part if part is not None and frame.source not in part.sources_taken else None
        return next(
            (
                part
                for part in (self._parts[uid] for uid in self._by_trigger.values())
                if part.recipe is recipe and frame.source not in part.sources_taken
            ),
            None,
        )

    def recipes(self) -> list[Any]:
        return [part.recipe for part in self._parts.values()]

    def close(self, uid: str) -> PartInFlight | None:
        """Take the part out, with its index entries (it is being recorded)."""
        part = self._parts.pop(uid, None)
        if part is None:
            return None
        if part.trigger is not None:
            self._by_trigger.pop(part.trigger, None)
        if part.seq_key is not None:
            self._by_frame_count.pop(part.seq_key, None)
            self._closed_counts[part.seq_key[1]] = None
            while len(self._closed_counts) > REMEMBER_CLOSED:
                self._closed_counts.popitem(last=False)
        return part
