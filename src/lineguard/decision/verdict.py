"""From check results to one verdict per part, and the per-part assembly with a deadline (pure logic).

A part is OK only when every expected check reported OK with a valid score.
A check that is missing when the deadline passes, or that failed (timeout,
decode or model error, no valid score), gives the part the fail-safe
decision the recipe configures: REVIEW or NG, never OK.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lineguard.decision.thresholds import Decision

SEVERITY = {Decision.OK: 0, Decision.REVIEW: 1, Decision.NG: 2}


@dataclass(frozen=True)
class CheckOutcome:
    """What one check said about a part. ``decision`` None: the check failed (``reason`` says why);
    otherwise ``reason`` may carry what the check saw (a classifier's class)."""

    check: str
    decision: Decision | None
    score: float | None = None
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.decision is not None and self.score is not None and math.isfinite(self.score)


@dataclass(frozen=True)
class VerdictPolicy:
    """The fail-safe decisions: for a check still missing at the deadline, and for a failed check."""

    missing: Decision = Decision.NG
    failed: Decision = Decision.NG

    def __post_init__(self) -> None:
        for name in ("missing", "failed"):
            if Decision(getattr(self, name)) == Decision.OK:
                raise ValueError(f"{name}: a part without a complete inspection is REVIEW or NG, never OK")


def check_decision(outcome: CheckOutcome | None, policy: VerdictPolicy) -> tuple[Decision, str]:
    """One check's decision and its reason: the fail-safe rule, in one place. Missing (``None``) ->
    ``policy.missing``; failed (no valid score) -> ``policy.failed``; else what the check decided."""
    if outcome is None:
        return Decision(policy.missing), "no result before the deadline"
    if not outcome.valid or outcome.decision is None:
        return Decision(policy.failed), outcome.reason or "no valid score"
    return Decision(outcome.decision), outcome.reason


def combine(
    expected: Sequence[str], outcomes: Mapping[str, CheckOutcome], policy: VerdictPolicy
) -> tuple[Decision, str]:
    """The part's verdict (the worst of its checks) and the reasons for anything but OK."""
    if not expected:
        raise ValueError("a recipe needs at least one check")
    unknown = sorted(set(outcomes) - set(expected))
    if unknown:
        raise ValueError(f"results for checks not in the recipe: {unknown}")
    verdict, reasons = Decision.OK, []
    for name in expected:
        outcome = outcomes.get(name)
        decision, why = check_decision(outcome, policy)
        if outcome is not None and outcome.valid:  # a decided check: its decision, then what it saw
            detail = f" ({why})" if why else ""
            why = f"{decision.value}{detail}" if decision != Decision.OK else ""
        if why:
            reasons.append(f"{name}: {why}")
        if SEVERITY[decision] > SEVERITY[verdict]:
            verdict = decision
    return verdict, "; ".join(reasons)


@dataclass(frozen=True)
class AssembledPart:
    uid: str
    part_id: str
    verdict: Decision
    reason: str
    outcomes: dict[str, CheckOutcome]
    timed_out: bool
    skipped: tuple[str, ...] = ()  # cascade: detailed checks this part did not need
    closed_at: float = field(default_factory=time.monotonic)  # when it was decided


@dataclass
class _OpenPart:
    part_id: str
    deadline: float
    outcomes: dict[str, CheckOutcome] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)


class PartAssembler:
    """Collects the checks of each part; a part closes when all have reported or its deadline passes.

    Results that arrive after their part closed are counted in ``late`` (or, once
    the part is forgotten, ``unmatched``) and change nothing: the verdict already
    reported stands.
    """

    def __init__(
        self,
        expected: Iterable[str],
        deadline_s: float,
        policy: VerdictPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        remember_closed: int = 10_000,
    ) -> None:
        self.expected = tuple(expected)
        if not self.expected:
            raise ValueError("a recipe needs at least one check")
        if deadline_s <= 0:
            raise ValueError(f"deadline must be positive, got {deadline_s} s")
        self.deadline_s = deadline_s
        self.policy = policy or VerdictPolicy()
        self.clock = clock
        self._open: dict[str, _OpenPart] = {}
        # Recently closed parts, to recognise late results; bounded, the station runs for months.
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.remember_closed = remember_closed
        self.late = 0
        self.unmatched = 0

    @property
    def pending(self) -> int:
        return len(self._open)

    def is_open(self, uid: str) -> bool:
        return uid in self._open

    def open(self, uid: str, part_id: str | None = None) -> None:
        if uid in self._open or uid in self._closed:
            raise ValueError(f"part {uid!r} was already opened")
        self._open[uid] = _OpenPart(part_id or uid, self.clock() + self.deadline_s)

    def name(self, uid: str, part_id: str) -> None:
        """Give an open part the ID its first image carries (a file name), if none was given."""
        part = self._open.get(uid)
        if part is not None and part.part_id == uid:
            part.part_id = part_id

    def add(self, uid: str, outcome: CheckOutcome) -> AssembledPart | None:
        """Record one check's outcome; returns the part once all its checks are in."""
        part = self._open.get(uid)
        if part is None:
            # Never raise here: a stray result must not stop the station.
            if uid in self._closed:
                self.late += 1
            else:
                self.unmatched += 1  # never opened, or closed too long ago to remember
            return None
        if outcome.check not in self.expected:
            raise ValueError(f"part {uid!r}: check {outcome.check!r} is not in the recipe {self.expected}")
        part.outcomes.setdefault(outcome.check, outcome)  # the first result of a check counts
        return self._close_if_complete(uid, part)

    def skip(self, uid: str, check: str) -> AssembledPart | None:
        """A cascade's detailed check this part does not need (its pre-screen passed it).

        Only for checks that have not reported; the part then needs one check fewer."""
        part = self._open.get(uid)
        if part is None or check in part.outcomes:
            return None
        if check not in self.expected:
            raise ValueError(f"part {uid!r}: check {check!r} is not in the recipe {self.expected}")
        part.skipped.add(check)
        return self._close_if_complete(uid, part)

    def _close_if_complete(self, uid: str, part: _OpenPart) -> AssembledPart | None:
        if len(part.outcomes) + len(part.skipped - set(part.outcomes)) == len(self.expected):
            return self._close(uid, timed_out=False)
        return None

    def expire(self) -> list[AssembledPart]:
        """Close every part whose deadline has passed, missing checks decided by the policy."""
        now = self.clock()
        due = [uid for uid, part in self._open.items() if part.deadline <= now]
        return [self._close(uid, timed_out=True) for uid in due]

    def close_all(self) -> list[AssembledPart]:
        """Close every open part now, missing checks decided by the policy (the station stopping)."""
        return [self._close(uid, timed_out=True) for uid in list(self._open)]

    def _close(self, uid: str, timed_out: bool) -> AssembledPart:
        part = self._open.pop(uid)
        self._closed[uid] = None
        while len(self._closed) > self.remember_closed:
            self._closed.popitem(last=False)
        needed = [c for c in self.expected if c not in part.skipped]
        verdict, reason = combine(needed, part.outcomes, self.policy)
        skipped = tuple(c for c in self.expected if c in part.skipped)
        return AssembledPart(uid, part.part_id, verdict, reason, dict(part.outcomes), timed_out, skipped)
