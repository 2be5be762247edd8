"""Every claim predicate at its bounds: just inside agrees, just outside diverges.

The bounds are written out here by hand from the papers' numbers and the margins stated in
``genscope.analyses.claims`` (not recomputed from its constants):

* shares: the paper's figure ± 5 percentage points (SHARE_MARGIN);
* ratios stated as a range: lower / 1.1, upper × 1.1 (RATIO_MARGIN = 10 %); the flash gain's
  lower end takes no margin (its value is the largest ratio over model pairs);
* "~10x": 10 / 2 to 10 × 2 (ORDER_OF_MAGNITUDE_FACTOR);
* exact geometric ratio 4: 1 % relative; fitted exponents: ± 0.1.
"""

import pytest

from genscope.analyses import claims

#: key -> (values just inside the range, values just outside it)
BOUNDS = {
    # "up to 44%": 44 ± 5 pt -> [0.39, 0.49]
    "conv_share_diffusion": ([0.390001, 0.44, 0.489999], [0.389999, 0.490001, 0.25, 0.80]),
    # "up to 49%": 49 ± 5 pt -> [0.44, 0.54]
    "linear_share_transformer": ([0.440001, 0.49, 0.539999], [0.439999, 0.540001, 0.30, 0.85]),
    # "1.1–2.5x": [1.1, 2.5 × 1.1] = [1.1, 2.75]; the value is the largest pair ratio, so no
    # margin below the paper's smallest
    "flash_diffusion_vs_transformer": ([1.1, 1.5, 2.5, 2.75], [1.099999, 1.0, 2.750001, 3.0]),
    # "4x": 4 within 1 % relative (of the larger): [3.96, 4 / 0.99 = 4.040404...]
    "seqlen_4x": ([3.960001, 4.0, 4.0404], [3.959999, 4.0405, 2.0]),
    # "over 60%": (0.60, 1.0]
    "temporal_60pct": ([0.600001, 1.0], [0.60, 0.599999, 1.000001]),
    # O(L^4): 4 ± 0.1
    "memory_L4": ([3.900001, 4.0, 4.099999], [3.899999, 4.100001, 3.7, 4.3]),
    # O(n^2): 2 ± 0.1
    "temporal_n2": ([1.900001, 2.0, 2.099999], [1.899999, 2.100001, 1.7, 2.3]),
    # prefill vs decode: ratio ≥ 10, no upper bound
    "diffusion_prefill": ([10.0, 1e6], [9.999999, 1.0]),
    # "dominated by idle": [0.5, 1.0]
    "decode_idle": ([0.5, 0.999999, 1.0], [0.499999, 1.000001]),
    # "34–66%": [0.29, 0.71]
    "linear_llm": ([0.290001, 0.34, 0.66, 0.709999], [0.289999, 0.710001, 0.90]),
    # "3.88x": [3.88 / 1.1 = 3.527272..., 3.88 × 1.1 = 4.268]
    "levers_388": ([3.5273, 3.88, 4.267999], [3.5272, 4.268001, 10.0]),
    # "~10x": [10 / 2, 10 × 2] = [5, 20]
    "flash_10x_bf16": ([5.0, 10.0, 20.0], [4.999999, 20.000001, 3.0, 30.0]),
    # "2–5x": [2 / 1.1 = 1.818181..., 5 × 1.1 = 5.5]
    "drift_2to5x": ([1.8182, 2.0, 5.0, 5.5], [1.8181, 5.500001, 1.5, 10.0]),
}

BY_KEY = {c.key: c for c in claims.CLAIMS}


def test_every_claim_has_bounds_here():
    assert set(BOUNDS) == set(BY_KEY)
    assert len(BY_KEY) == 13


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_predicate_agrees_just_inside_and_diverges_just_outside(key):
    inside, outside = BOUNDS[key]
    check = BY_KEY[key].check
    for v in inside:
        assert check(v) is True, (key, v)
    for v in outside:
        assert check(v) is False, (key, v)


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_predicates_are_importable_by_claim_key(key):
    assert getattr(claims, key) is BY_KEY[key].check


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_table_says_agrees_or_diverges_with_the_matching_reason(key):
    inside, outside = BOUNDS[key]
    c = BY_KEY[key]
    for value, verdict, why in (
        (inside[0], "agrees", c.why_agrees),
        (outside[0], "diverges", c.why_diverges),
    ):
        f = claims.Finding(value, f"{value}", "analytic (test)", "detail line")
        row = claims.claims_table({key: f}).set_index("claim").loc[c.claim]
        assert row["verdict"] == verdict
        assert row["why"] == f"{why}. detail line"
        assert row["genscope"] == f"{value}" and row["check"] == c.expected


def test_expected_text_states_the_range_the_predicate_checks():
    assert "[39%, 49%]" in BY_KEY["conv_share_diffusion"].expected
    assert "[44%, 54%]" in BY_KEY["linear_share_transformer"].expected
    assert "[1.10x, 2.75x]" in BY_KEY["flash_diffusion_vs_transformer"].expected
    assert "[29%, 71%]" in BY_KEY["linear_llm"].expected
    assert "[3.53x, 4.27x]" in BY_KEY["levers_388"].expected
    assert "[5.00x, 20.00x]" in BY_KEY["flash_10x_bf16"].expected
    assert "[1.82x, 5.50x]" in BY_KEY["drift_2to5x"].expected


def test_missing_or_nan_findings_are_not_measured():
    f = {"seqlen_4x": claims.Finding(float("nan"), "nan", "analytic (test)")}
    t = claims.claims_table(f).set_index("claim")
    assert set(t["verdict"]) == {"not measured"}
    assert (t["genscope"] == "—").all()
