"""Per-part verdicts: worst check wins, missing or failed checks are never OK, deadlines close parts."""

import pytest

from lineguard.decision import Decision
from lineguard.decision.verdict import CheckOutcome, PartAssembler, VerdictPolicy, combine

OK, REVIEW, NG = Decision.OK, Decision.REVIEW, Decision.NG


def ok(check, score=1.0):
    return CheckOutcome(check, OK, score)


def test_worst_check_decides_and_reasons_name_the_checks():
    policy = VerdictPolicy()
    assert combine(["top", "side"], {"top": ok("top"), "side": ok("side")}, policy) == (OK, "")
    outcomes = {"top": ok("top"), "side": CheckOutcome("side", REVIEW, 5.0)}
    assert combine(["top", "side"], outcomes, policy) == (REVIEW, "side: REVIEW")
    outcomes["top"] = CheckOutcome("top", NG, 9.0)
    assert combine(["top", "side"], outcomes, policy) == (NG, "top: NG; side: REVIEW")


@pytest.mark.parametrize("fail_safe", [REVIEW, NG])
def test_missing_and_failed_checks_take_the_fail_safe_decision(fail_safe):
    policy = VerdictPolicy(missing=fail_safe, failed=fail_safe)
    assert combine(["top", "side"], {"top": ok("top")}, policy) == (
        fail_safe,
        "side: no result before the deadline",
    )
    broken = {"top": ok("top"), "side": CheckOutcome("side", None, None, "decode error: truncated JPEG")}
    assert combine(["top", "side"], broken, policy) == (fail_safe, "side: decode error: truncated JPEG")
    nan = {"top": ok("top"), "side": CheckOutcome("side", OK, float("nan"))}  # OK without a score
    assert combine(["top", "side"], nan, policy)[0] == fail_safe


def test_policy_and_recipe_errors():
    with pytest.raises(ValueError, match="never OK"):
        VerdictPolicy(missing=OK)
    with pytest.raises(ValueError, match="not in the recipe"):
        combine(["top"], {"top": ok("top"), "bottom": ok("bottom")}, VerdictPolicy())
    with pytest.raises(ValueError, match="at least one check"):
        combine([], {}, VerdictPolicy())


def test_assembler_closes_on_completion_or_deadline_and_ignores_late_results():
    now = [0.0]
    parts = PartAssembler(
        ["top", "side"], deadline_s=0.5, policy=VerdictPolicy(missing=REVIEW), clock=lambda: now[0]
    )
    parts.open("u1", "P1")
    parts.open("u2", "P2")
    assert parts.add("u1", ok("top")) is None
    done = parts.add("u1", ok("side"))
    assert done.verdict == OK and not done.timed_out and done.part_id == "P1"
    assert parts.add("u2", ok("top")) is None
    now[0] = 0.4
    assert parts.expire() == []
    now[0] = 0.6
    (expired,) = parts.expire()
    assert expired.uid == "u2" and expired.timed_out and expired.verdict == REVIEW
    assert expired.reason == "side: no result before the deadline"
    assert parts.add("u2", ok("side")) is None and parts.late == 1  # too late: the verdict stands
    assert parts.pending == 0
    with pytest.raises(ValueError, match="already opened"):
        parts.open("u1")
    assert parts.add("u9", ok("top")) is None and parts.unmatched == 1


def test_assembler_remembers_a_bounded_number_of_closed_parts():
    parts = PartAssembler(["top"], deadline_s=1.0, remember_closed=3)
    for i in range(10):
        parts.open(f"u{i}")
        assert parts.add(f"u{i}", ok("top")).verdict == OK
    parts.add("u9", ok("top"))  # remembered: late
    parts.add("u0", ok("top"))  # forgotten: unmatched, and no error
    assert (parts.late, parts.unmatched) == (1, 1)
    parts.open("u0")  # an ID the line reuses after a long time opens again


def test_a_skipped_cascade_check_is_not_needed_but_a_missing_one_is():
    from lineguard.decision import PartAssembler

    now = [0.0]
    asm = PartAssembler(["screen", "detail"], deadline_s=1.0, clock=lambda: now[0])
    asm.open("u1")
    assert asm.add("u1", CheckOutcome("screen", Decision.OK, 0.1)) is None
    part = asm.skip("u1", "detail")
    assert part is not None and part.verdict == Decision.OK and part.skipped == ("detail",)
    asm.open("u2")
    asm.add("u2", CheckOutcome("screen", Decision.NG, 9.0))
    now[0] = 2.0
    (expired,) = asm.expire()
    assert expired.verdict == Decision.NG and expired.skipped == ()
    asm.open("u3")
    asm.add("u3", CheckOutcome("screen", Decision.REVIEW, 5.0))
    now[0] = 4.0
    (expired,) = asm.expire()  # the detail check was needed and never came: fail-safe, not OK
    assert expired.verdict == Decision.NG and "detail: no result before the deadline" in expired.reason
