"""Item 8: leaderboard / compare / report / plot-tradeoff only ever give a clear error or a warning on a
malformed run folder (hypothesis over results.json, rows and run.json shapes), never a traceback."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runner_fakes import make_world, run

from multiid_bench.cli._errors import run_with_error_mapping
from multiid_bench.cli.main import cli

FILES = ("results.json", "cases.jsonl", "run.json")
ALLOWED = {0, 1, 2, 3, 4}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    obj[path[0]] = _replace(obj[path[0]], path[1:], value)
    return obj


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readers")
    world = make_world(root / "bench", persons=(1, 2, 3))
    out = root / "good"
    assert run(world, "ground-truth", out, root / "cache").complete
    return out


def _invoke(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_with_error_mapping(cli, list(args), debug=False)
    return code, err.getvalue()


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), name=st.sampled_from(FILES), how=st.sampled_from(["value", "deep", "whole", "text"]))
def test_readers_survive_any_folder(good_run: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject,
                                    name: str, how: str) -> None:
    folder = tmp_path_factory.mktemp("bad") / "run"
    shutil.copytree(good_run, folder)
    path = folder / name
    lines = path.read_text().splitlines()
    line_no = data.draw(st.integers(0, len(lines) - 1)) if name.endswith(".jsonl") else None
    doc = json.loads(lines[line_no]) if line_no is not None else json.loads(path.read_text())
    if how == "value":
        where = data.draw(st.sampled_from(_paths(doc)))
        doc_text = json.dumps(_replace(doc, where, data.draw(json_values)))
    elif how == "deep":
        depth = data.draw(st.sampled_from([50, 3000, 100_000]))
        doc_text = "[" * depth + "]" * depth
    elif how == "whole":
        doc_text = json.dumps(data.draw(json_values))
    else:
        doc_text = data.draw(st.text(max_size=40))
    if line_no is not None:
        lines[line_no] = doc_text.replace("\n", " ")
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text(doc_text)
    _all_readers_cope(good_run, folder)


def _all_readers_cope(good_run: Path, folder: Path) -> None:
    for args in (["leaderboard", str(folder), "--format", "markdown"],
                 ["compare", str(good_run), str(folder)],
                 ["report", str(folder), "--out", str(folder / "r.html"), "--no-include-paper", "--thumb", "64"],
                 ["plot-tradeoff", str(folder), "--out", str(folder / "plot")]):
        code, err = _invoke(*args)  # an exception escaping here fails the test with its traceback
        assert code in ALLOWED, (args, code, err)
        assert "Traceback" not in err


#: Folders that gave tracebacks before (issue 25): (file, JSON path or None for the whole file, new value).
KNOWN = [
    ("results.json", None, "[" * 5000 + "]" * 5000),
    ("run.json", ("config",), ["not", "a", "mapping"]),
    ("run.json", ("plan",), "all"),
    ("cases.jsonl", ("scores",), None),
    ("cases.jsonl", ("detections", "fake-det", "generated", 0), "x"),
    ("cases.jsonl", ("detections", "fake-det", "generated", 0, "box"), [9, 9, 1, 1]),
    ("cases.jsonl", ("detections", "fake-det", "refs", 0, 0, "box", 0), {"a": 1}),
]


@pytest.mark.parametrize("name,where,value", KNOWN)
def test_known_malformed_folders_give_a_clear_error_or_a_warning(good_run: Path, tmp_path: Path, name: str,
                                                                 where: tuple[Any, ...] | None, value: Any) -> None:
    folder = tmp_path / "run"
    shutil.copytree(good_run, folder)
    path = folder / name
    if where is None:
        path.write_text(value)
    elif name.endswith(".jsonl"):
        lines = path.read_text().splitlines()
        lines[0] = json.dumps(_replace(json.loads(lines[0]), where, value))
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text(json.dumps(_replace(json.loads(path.read_text()), where, value)))
    _all_readers_cope(good_run, folder)
