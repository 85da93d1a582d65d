"""Property-based: whatever the checks report, in any order, with any gaps, a part is OK only when
every expected check reported OK with a finite score before the deadline."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lineguard.decision import CheckOutcome, Decision, PartAssembler, VerdictPolicy
from lineguard.decision.verdict import combine

CHECKS = ("top", "side", "ocr")
scores = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10))
outcomes = st.builds(
    CheckOutcome, st.sampled_from(CHECKS), st.one_of(st.none(), st.sampled_from(list(Decision))), scores
)
policies = st.builds(
    VerdictPolicy,
    st.sampled_from([Decision.REVIEW, Decision.NG]),
    st.sampled_from([Decision.REVIEW, Decision.NG]),
)


def _all_valid_ok(expected, reported) -> bool:
    return all(
        name in reported
        and reported[name].decision == Decision.OK
        and reported[name].score is not None
        and math.isfinite(reported[name].score)
        for name in expected
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes, max_size=6), policies, st.integers(1, 3))
def test_ok_only_when_every_check_reported_a_valid_ok(reports, policy, n_expected):
    expected = CHECKS[:n_expected]
    reported: dict[str, CheckOutcome] = {}
    for outcome in reports:
        if outcome.check in expected:
            reported.setdefault(outcome.check, outcome)  # the first result of a check counts
    verdict, reason = combine(expected, reported, policy)
    assert (verdict == Decision.OK) == _all_valid_ok(expected, reported)
    if verdict != Decision.OK:
        assert reason  # never a silent REVIEW or NG


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes, max_size=6), policies, st.booleans())
def test_the_assembler_never_closes_an_incomplete_part_ok(reports, policy, deadline_passes):
    now = [0.0]
    assembler = PartAssembler(CHECKS, 1.0, policy, clock=lambda: now[0])
    assembler.open("u1", "P1")
    closed = []
    for outcome in reports:
        part = assembler.add("u1", outcome)
        if part is not None:
            closed.append(part)
    if deadline_passes:
        now[0] = 2.0
        closed += assembler.expire()
    assert len(closed) <= 1
    for part in closed:
        first = {}
        for outcome in reports:
            first.setdefault(outcome.check, outcome)
        assert (part.verdict == Decision.OK) == _all_valid_ok(CHECKS, first)
