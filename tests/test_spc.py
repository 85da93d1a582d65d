"""Control charts, run rules and capability against published worked examples and constructed
series. Sources: D. C. Montgomery, *Introduction to Statistical Quality Control* (Wiley, 6th/7th
ed.): Appendix VI (chart constants), Example 6.1 / Tables 6.3-6.4 (piston-ring inside diameters,
X̄-R and X̄-S), Example 7.1 / Table 7.1 (orange-juice cans, p chart); L. S. Nelson, J. Quality
Technology 16(4), 1984 (the eight rules)."""

from __future__ import annotations

import numpy as np
import pytest

from lineguard.spc import (
    Subgroups,
    capability,
    cusum,
    ewma,
    i_mr,
    nelson,
    np_chart,
    p_chart,
    western_electric,
    xbar_r,
    xbar_s,
)
from lineguard.spc import constants as k

# Montgomery Table 6.3: 25 samples of 5 piston-ring inside diameters (mm), then Table 6.4: 15 more.
PISTON_RINGS = np.array(
    [
        [74.030, 74.002, 74.019, 73.992, 74.008],
        [73.995, 73.992, 74.001, 74.011, 74.004],
        [73.998, 74.024, 74.021, 74.005, 74.002],
        [74.002, 73.996, 73.993, 74.015, 74.009],
        [73.992, 74.007, 74.015, 73.989, 74.014],
        [74.009, 73.994, 73.997, 73.985, 73.993],
        [73.995, 74.006, 73.994, 74.000, 74.005],
        [73.985, 74.003, 73.993, 74.015, 73.988],
        [74.008, 73.995, 74.009, 74.005, 74.004],
        [73.998, 74.000, 73.990, 74.007, 73.995],
        [73.994, 73.998, 73.994, 73.995, 73.990],
        [74.004, 74.000, 74.007, 74.000, 73.996],
        [73.983, 74.002, 73.998, 73.997, 74.012],
        [74.006, 73.967, 73.994, 74.000, 73.984],
        [74.012, 74.014, 73.998, 73.999, 74.007],
        [74.000, 73.984, 74.005, 73.998, 73.996],
        [73.994, 74.012, 73.986, 74.005, 74.007],
        [74.006, 74.010, 74.018, 74.003, 74.000],
        [73.984, 74.002, 74.003, 74.005, 73.997],
        [74.000, 74.010, 74.013, 74.020, 74.003],
        [73.982, 74.001, 74.015, 74.005, 73.996],
        [74.004, 73.999, 73.990, 74.006, 74.009],
        [74.010, 73.989, 73.990, 74.009, 74.014],
        [74.015, 74.008, 73.993, 74.000, 74.010],
        [73.982, 73.984, 73.995, 74.017, 74.013],
    ]
)
MORE_RINGS = np.array(
    [
        [74.012, 74.015, 74.030, 73.986, 74.000],
        [73.995, 74.010, 73.990, 74.015, 74.001],
        [73.987, 73.999, 73.985, 74.000, 73.990],
        [74.008, 74.010, 74.003, 73.991, 74.006],
        [74.003, 74.000, 74.001, 73.986, 73.997],
        [73.994, 74.003, 74.015, 74.020, 74.004],
        [74.008, 74.002, 74.018, 73.995, 74.005],
        [74.001, 74.004, 73.990, 73.996, 73.998],
        [74.015, 74.000, 74.016, 74.025, 74.000],
        [74.030, 74.005, 74.000, 74.016, 74.012],
        [74.001, 73.990, 73.995, 74.010, 74.024],
        [74.015, 74.020, 74.024, 74.005, 74.019],
        [74.035, 74.010, 74.012, 74.015, 74.026],
        [74.017, 74.013, 74.036, 74.025, 74.026],
        [74.010, 74.005, 74.029, 74.000, 74.020],
    ]
)
# Montgomery Table 7.1: nonconforming cans in 30 samples of 50.
ORANGE_JUICE = [
    12,
    15,
    8,
    10,
    4,
    7,
    16,
    9,
    14,
    10,
    5,
    6,
    17,
    12,
    22,
    8,
    10,
    5,
    13,
    11,
    20,
    18,
    24,
    15,
    9,
    12,
    7,
]
ORANGE_JUICE += [13, 9, 6]


def test_chart_constants_match_the_printed_table() -> None:
    printed = {  # n: (d2, d3, c4, A2, A3, D3, D4, B3, B4), Montgomery Appendix VI
        2: (1.128, 0.853, 0.7979, 1.880, 2.659, 0.0, 3.267, 0.0, 3.267),
        5: (2.326, 0.864, 0.9400, 0.577, 1.427, 0.0, 2.114, 0.0, 2.089),
        10: (3.078, 0.797, 0.9727, 0.308, 0.975, 0.223, 1.777, 0.284, 1.716),
        25: (3.931, 0.708, 0.9896, 0.153, 0.606, 0.459, 1.541, 0.565, 1.435),
    }
    for n, values in printed.items():
        got = (k.d2(n), k.d3(n), k.c4(n), k.A2(n), k.A3(n), k.D3(n), k.D4(n), k.B3(n), k.B4(n))
        for want, value in zip(values, got, strict=True):
            decimals = len(f"{want}".split(".")[1])
            assert round(value, max(decimals, 3)) == pytest.approx(want, abs=0.6 * 10 ** -max(decimals, 3)), (
                n,
                want,
            )
    with pytest.raises(ValueError, match="integer >= 2"):
        k.d2(1)


def test_the_piston_ring_xbar_r_chart_of_montgomery_example_6_1() -> None:
    phase1 = xbar_r(Subgroups.of(PISTON_RINGS))
    xbar, r = phase1.location, phase1.spread
    assert round(phase1.mean, 3) == 74.001 and round(r.center[0], 3) == 0.023  # x̿, R̄
    assert round(xbar.ucl[0], 3) == 74.014 and round(xbar.lcl[0], 3) == 73.988
    assert r.lcl[0] == 0  # D3 = 0 at n = 5
    # the book prints UCL_R = 0.049 from R̄ rounded to 0.023 first; from R̄ itself D4·R̄ = 0.0483
    assert r.ucl[0] == pytest.approx(k.D4(5) * r.center[0]) and round(r.ucl[0], 3) == 0.048
    assert xbar.out_of_control.size == 0 and r.out_of_control.size == 0  # in control in phase I
    # phase II (Table 6.4) against the frozen limits: samples 37, 38 and 39 plot above the UCL
    phase2 = xbar_r(Subgroups.of(MORE_RINGS), frozen=phase1)
    assert np.array_equal(phase2.location.ucl, np.full(15, xbar.ucl[0]))
    assert (phase2.location.out_of_control + 26).tolist() == [37, 38, 39]
    assert "nelson-1" in {v.rule for v in phase2.location.violations}


def test_the_piston_ring_xbar_s_chart_and_variable_subgroup_sizes() -> None:
    phase1 = xbar_s(Subgroups.of(PISTON_RINGS))
    assert round(phase1.location.ucl[0], 3) == 74.014 and round(phase1.location.lcl[0], 3) == 73.988
    s_bar = PISTON_RINGS.std(axis=1, ddof=1).mean()
    assert phase1.spread.center[0] == pytest.approx(s_bar) and phase1.spread.ucl[0] == pytest.approx(
        k.B4(5) * s_bar
    )
    # drop a value from some subgroups: limits widen exactly where the subgroup is smaller
    ragged = [row[:4] if i % 3 == 0 else row for i, row in enumerate(PISTON_RINGS)]
    chart = xbar_s(Subgroups.of(ragged)).location
    half = chart.ucl - chart.center
    assert half[0] == pytest.approx(half[1] * np.sqrt(5 / 4)) and half[1] == pytest.approx(half[2])
    with pytest.raises(ValueError, match="at least 2 values"):
        xbar_r(Subgroups.of([[1.0], [2.0, 3.0]]))


def test_the_orange_juice_p_chart_of_montgomery_example_7_1() -> None:
    chart = p_chart(ORANGE_JUICE, [50] * 30)
    assert round(chart.p, 4) == 0.2313
    assert round(chart.chart.ucl[0], 4) == 0.4102 and round(chart.chart.lcl[0], 4) == 0.0524
    assert (chart.chart.out_of_control + 1).tolist() == [15, 23]  # the samples the book investigates
    counts = np_chart(ORANGE_JUICE, [50] * 30)
    assert counts.chart.center[0] == pytest.approx(50 * chart.p)
    assert counts.chart.ucl[0] == pytest.approx(50 * chart.chart.ucl[0])
    varying = p_chart([2, 5], [100, 400])  # limits per subgroup size
    p = 7 / 500
    assert varying.chart.ucl.tolist() == pytest.approx([p + 3 * np.sqrt(p * (1 - p) / n) for n in (100, 400)])
    with pytest.raises(ValueError, match="one size"):
        np_chart([2, 5], [100, 400])
    with pytest.raises(ValueError, match="0 <= rejected <= inspected"):
        p_chart([5], [4])


def test_individuals_moving_range() -> None:
    x = [10.0, 12.0, 11.0, 13.0, 12.0]
    chart = i_mr(x)
    mr_bar = np.mean([2, 1, 2, 1])
    assert chart.sigma == pytest.approx(mr_bar / k.d2(2))
    assert chart.location.ucl[0] == pytest.approx(11.6 + 3 * mr_bar / 1.1284, rel=1e-4)
    assert chart.spread.ucl[0] == pytest.approx(k.D4(2) * mr_bar) and np.isnan(chart.spread.values[0])
    frozen = i_mr([30.0, 31.0], frozen=chart)
    assert frozen.location.out_of_control.tolist() == [0, 1]


def test_ewma_and_tabular_cusum() -> None:
    z = ewma([1.0, 1.0, 1.0], target=0.0, sigma=1.0, lam=0.5, L=3.0)
    assert z.values.tolist() == [0.5, 0.75, 0.875]
    assert z.ucl[0] == pytest.approx(3 * np.sqrt(0.5 / 1.5 * (1 - 0.25)))  # exact first-point limit
    shewhart = ewma([0.5, 3.5], target=0.0, sigma=1.0, lam=1.0)  # λ = 1: the individuals chart
    assert shewhart.ucl.tolist() == pytest.approx([3.0, 3.0]) and shewhart.out_of_control.tolist() == [1]
    # C+ by hand: 0, 0.5, 2.0, 3.5, 5.0, 6.5 — beyond h = 5 first at the sixth point, from the second on
    sums = cusum([10, 11, 12, 12, 12, 12], target=10, sigma=1)
    assert sums.upper.tolist() == [0, 0.5, 2.0, 3.5, 5.0, 6.5] and sums.lower.tolist() == [0] * 6
    assert sums.signals == (5,) and sums.began == (1,)
    down = cusum([10, 8, 8, 8], target=10, sigma=1, h_sigma=4)
    assert down.signals == (3,) and down.lower.tolist() == [0, 1.5, 3.0, 4.5]


@pytest.mark.parametrize(
    ("rule", "fires", "quiet", "at"),
    [
        (1, [0, 0, 3.5], [0, 0, 2.9], 2),
        (2, [0.5] * 9, [0.5] * 8, 8),
        (3, [-1, -0.5, 0, 0.3, 0.6, 0.9], [-1, -0.5, 0, 0.3, 0.6, 0.5], 5),
        (4, [0.5, -0.5] * 7, [0.5, -0.5] * 6 + [0.5], 13),
        (5, [2.5, 0, 2.5], [2.5, 0, -2.5], 2),
        (6, [1.5, 1.5, 0, 1.5, 1.5], [1.5, 1.5, 0, 0, 1.5], 4),
        (
            7,
            [0.1, 0.3, -0.2, -0.1, 0.2] * 3,
            [0.1, 0.3, -0.2, -0.1, 0.2] * 2 + [0.1, 0.3, 1.5, -0.1, 0.2],
            14,
        ),
        (8, [1.5, -1.5] * 4, [1.5] * 8, 7),
    ],
)
def test_each_nelson_rule_fires_where_it_must_and_only_there(rule, fires, quiet, at) -> None:
    found = nelson(np.array(fires, float), 0.0, 1.0, rules=(rule,))
    assert [v.index for v in found] == [at] and found[0].rule == f"nelson-{rule}"
    assert nelson(np.array(quiet, float), 0.0, 1.0, rules=(rule,)) == ()


def test_western_electric_rules_and_zones_per_point() -> None:
    assert [v.index for v in western_electric(np.full(8, 0.4), 0.0, 1.0, rules=(4,))] == [7]
    assert western_electric(np.full(7, 0.4), 0.0, 1.0, rules=(4,)) == ()
    # a point 2.5 units out is beyond 3 sigma of a subgroup whose sigma is 0.5, not of one at 1
    sigma = np.array([1.0, 0.5])
    assert [v.index for v in western_electric(np.array([2.5, 2.5]), 0.0, sigma, rules=(1,))] == [1]
    with pytest.raises(ValueError, match="rules are"):
        nelson(np.zeros(3), 0.0, 1.0, rules=(9,))


def test_capability_indices_and_their_intervals_cover_the_truth() -> None:
    values = np.array([14.0, 16.0, 18.0, 16.0])  # mean 16
    c = capability(values, lsl=8, usl=20, sigma_within=2.0)
    assert c.cp == pytest.approx(1.0) and c.cpk == pytest.approx(4 / 6)  # (20 - 16) / (3·2)
    upper_only = capability(values, usl=20, sigma_within=2.0)
    assert upper_only.cp is None and upper_only.cpk == pytest.approx(4 / 6)
    # coverage of the 95 % intervals over 2000 samples of 50 parts whose true Pp = Ppk = 1
    rng = np.random.default_rng(0)
    covered = np.zeros(2)
    for _ in range(2000):
        c = capability(rng.normal(0, 1, 50), lsl=-3, usl=3)
        covered += [c.pp_interval[0] <= 1 <= c.pp_interval[1], c.ppk_interval[0] <= 1 <= c.ppk_interval[1]]
    assert np.all((covered / 2000 >= 0.93) & (covered / 2000 <= 0.97)), covered / 2000
    # from the record's subgroup statistics: the same overall sigma as from the values themselves
    flat = PISTON_RINGS.ravel()
    grouped = capability(Subgroups.of(PISTON_RINGS), lsl=73.95, usl=74.05)
    direct = capability(flat, lsl=73.95, usl=74.05, sigma_within=grouped.sigma_within)
    assert grouped.pp == pytest.approx(direct.pp) and grouped.ppk == pytest.approx(direct.ppk)
    assert grouped.n == 125 and grouped.sigma_within == pytest.approx(0.0099, abs=0.0005)  # about R̄/d2
    with pytest.raises(ValueError, match="upside down"):
        capability(values, lsl=20, usl=8)
    with pytest.raises(ValueError, match="lower and/or an upper"):
        capability(values)
    with pytest.raises(ValueError, match="do not vary"):
        capability([5.0, 5.0, 5.0], lsl=0, usl=10)
