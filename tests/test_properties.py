"""Property-based: no input makes genscope print a traceback (issue #17).

Whatever Settings, CLI options or sweep spec hypothesis invents, genscope either accepts it or
fails with one :class:`~genscope.errors.UserError` line and exit code 2 (with ``--json``, one
JSON error object on stdout). Work past validation is cut short by a patched ``Workload.build``
so the properties stay fast: they are about the checks before any work.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genscope.cli import main
from genscope.errors import UserError
from genscope.sweep.spec import parse_spec
from genscope.workloads.base import Settings
from genscope.workloads.registry import get_workload, workload_names

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WORKLOADS = sorted(workload_names())
ints = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 2, 64, 4096]))
texts = st.text(max_size=30)
anything = st.one_of(
    ints, texts, st.booleans(), st.floats(allow_nan=True), st.lists(ints, max_size=3)
)


class Reached(Exception):
    """Raised by the patched ``build``: validation accepted the input."""


@pytest.fixture
def stop_at_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("GENSCOPE_HOME", str(tmp_path))

    def build(self: Any, s: Any) -> None:
        raise Reached

    monkeypatch.setattr("genscope.workloads.base.Workload.build", build)


@FAST
@given(
    workload=st.sampled_from(WORKLOADS),
    size=st.one_of(st.sampled_from(["full", "tiny"]), anything),
    res=st.one_of(st.none(), st.tuples(ints, ints), anything),
    frames=anything,
    steps=anything,
    batch=st.one_of(st.integers(-5, 10**12), anything),
    cfg=st.one_of(st.none(), st.booleans(), anything),
    dtype=st.one_of(st.sampled_from(["fp32", "bf16", "fp16"]), anything),
    attention=st.one_of(st.sampled_from(["flash", "math"]), anything),
    variant=st.one_of(st.none(), texts, anything),
    prompt_len=anything,
    new_tokens=anything,
)
def test_resolve_accepts_or_raises_user_error(workload: str, **fields: Any) -> None:
    wl = get_workload(workload)
    try:
        s = wl.resolve(Settings(**fields))
    except UserError as err:
        assert "\n" not in str(err) and len(str(err)) < 600
        return
    for opt, limit in wl.limits.items():  # accepted settings are inside every bound
        value = getattr(s, opt)
        for v in value if opt == "res" and value else (value,):
            assert v is None or 1 <= v <= limit


option_value = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.text(alphabet="0123456789x-+. abcé'\"[]{}*", max_size=25),
    st.sampled_from(["", "0", "1", "64", "512x512", "4097", "nan", "-1", "1e9"]),
)


@FAST
@given(
    workload=st.one_of(st.sampled_from(WORKLOADS), st.text(max_size=12)),
    options=st.dictionaries(
        st.sampled_from(
            ["--res", "--frames", "--steps", "--batch", "--size", "--dtype", "--attention",
             "--variant", "--prompt-len", "--new-tokens", "--mode", "--hardware"]
        ),
        option_value,
        max_size=4,
    ),
    as_json=st.booleans(),
)  # fmt: skip
def test_cli_never_prints_a_traceback(
    stop_at_build: None,
    capsys: pytest.CaptureFixture[str],
    workload: str,
    options: dict[str, str],
    as_json: bool,
) -> None:
    argv = ["trace", workload, *(x for kv in options.items() for x in kv)]
    argv += ["--json"] if as_json else []
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if "Reached" in err:  # validation accepted it; the patched build stopped the work
        assert exc.value.code == 1
        return
    assert exc.value.code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("genscope: error: ")
    if as_json:
        (line,) = out.strip().splitlines()
        assert set(json.loads(line)["error"]) >= {"type", "message"}
    else:
        assert out == ""


yaml_scalar = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["null", "true", "~", "64", "512x768", "sd15", "fp16", "'*a'", "[]", "{}"]),
    st.text(alphabet="abc019x-_ '\"&*!|>%@`", max_size=15),
)
spec_keys = st.sampled_from(
    ["name", "workloads", "workload", "res", "frames", "steps", "batch", "cfg", "dtype", "size",
     "attention", "mode", "hardware", "variant", "prompt_len", "resources", "bogus"]
)  # fmt: skip


@FAST
@given(
    entries=st.lists(
        st.tuples(spec_keys, st.lists(yaml_scalar, max_size=4), st.booleans()), max_size=8
    ),
    anchor=st.booleans(),
)
def test_sweep_specs_parse_or_raise_user_error(
    entries: list[tuple[str, list[str], bool]], anchor: bool
) -> None:
    lines = []
    for i, (key, values, as_list) in enumerate(entries):
        body = f"[{', '.join(values)}]" if as_list else (values[0] if values else "")
        if anchor and i == 0:
            body = f"&a {body}"
        lines.append(f"{key}: {body}")
    if anchor and entries:
        lines.append("steps: *a")
    text = "\n".join(lines)
    try:
        spec = parse_spec(text)
        points = spec.points()
    except UserError as err:
        assert "\n" not in str(err) and len(str(err)) < 600
        return
    assert not anchor  # aliases never get through
    assert len(points) >= 1
