"""Scorecard: the shipped rows are well formed, scoring is pure and deterministic, bad rows fail."""

import copy
import json

import pytest

from genscope.costmodel.gpu.scorecard import family, load_rows, score
from genscope.costmodel.hardware import hardware_names
from genscope.errors import UserError
from genscope.workloads.registry import workload_names

WORKLOADS = workload_names()


def test_shipped_rows_cover_the_targets():
    rows = load_rows()
    assert len(rows) >= 12
    assert len({family(r) for r in rows}) >= 4
    assert len({r["gpu"] for r in rows}) >= 2
    for r in rows:
        assert r["workload"] in WORKLOADS and r["gpu"] in hardware_names(), r["id"]
        assert r["source"] and r["date"] and r["published_s"] > 0, r["id"]
        assert r["scope"] in ("end_to_end", "denoise_loop")


def fake(factor_by_id):
    return lambda row: row["published_s"] * factor_by_id.get(row["id"], 1.1)


def test_score_by_hand():
    rows = [
        {"id": "a", "workload": "sd15", "gpu": "a100-80g-sxm", "published_s": 2.0, "levers": []},
        {
            "id": "b",
            "workload": "sd15",
            "gpu": "a100-80g-sxm",
            "published_s": 1.0,
            "levers": ["compile"],
            "baseline": "a",
        },
        {"id": "c", "workload": "llama", "gpu": "h100-sxm", "published_s": 4.0, "levers": []},
    ]
    out = score(rows, fake({"a": 1.2, "b": 0.9, "c": 0.7}), workloads=WORKLOADS)
    assert [r["error_pct"] for r in out["rows"]] == [20.0, -10.0, -30.0]
    assert out["mape_pct"] == 20.0 and out["worst_pct"] == -30.0
    # published speedup 2.0; predicted 2.4 / 0.9 = 2.667 -> +33.33 %
    assert out["rows"][1]["predicted_speedup"] == pytest.approx(2.667, abs=1e-3)
    assert out["lever_speedup_mape_pct"] == pytest.approx(33.33, abs=0.01)
    assert out["by_gpu"] == {
        "a100-80g-sxm": {"mape_pct": 15.0, "rows": 2},
        "h100-sxm": {"mape_pct": 30.0, "rows": 1},
    }
    assert set(out["by_family"]) == {"sd15", "llama"}


def test_score_is_deterministic():
    rows = load_rows()
    a = json.dumps(score(rows, fake({}), workloads=WORKLOADS), sort_keys=True)
    b = json.dumps(score(rows, fake({}), workloads=WORKLOADS), sort_keys=True)
    assert a == b
    assert json.loads(a)["mape_pct"] == 10.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "workload",
            "dalle3",
            r"unknown workload in scorecard row 'x': 'dalle3'; choose one of:.*sd15",
        ),
        (
            "gpu",
            "mi300x",
            r"unknown GPU in scorecard row 'x': 'mi300x'; choose one of:.*a100-80g-sxm",
        ),
        ("scope", "vae_only", r"choose one of: denoise_loop, end_to_end"),
        ("published_s", -1, "positive number"),
        ("baseline", "nope", r"unknown baseline of scorecard row 'x': 'nope'"),
    ],
)
def test_bad_rows_are_user_errors(field, value, message):
    row = {"id": "x", "workload": "sd15", "gpu": "a100-80g-sxm", "published_s": 1.0}
    bad = copy.deepcopy(row)
    bad[field] = value
    with pytest.raises(UserError, match=message):
        score([bad], fake({}), workloads=WORKLOADS)
