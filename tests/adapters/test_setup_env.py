"""``mbench setup-env``: pinned plans for every worker adapter, the build steps, and the record adapters read."""
from __future__ import annotations

import ast
import json
import re
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from multiid_bench.adapters import adapter_class, get_adapter, list_adapters
from multiid_bench.adapters._worker import WORKERS_DIR
from multiid_bench.adapters.env_build import EnvBuildError, run_plan
from multiid_bench.adapters.environments import SPECS, lock_path, plan, read_lock, read_records, spec_for
from multiid_bench.cli.main import cli

WORKER_ADAPTERS = sorted(n for n in list_adapters() if adapter_class(n).capabilities.integration == "worker")
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!-]*$")


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("MBENCH_CONFIG_DIR", str(tmp_path / "config"))


def test_every_worker_adapter_has_a_pinned_spec_with_an_exact_lock():
    assert sorted(SPECS) == WORKER_ADAPTERS and len(WORKER_ADAPTERS) == 11
    for name, spec in SPECS.items():
        caps = adapter_class(name).capabilities
        assert re.fullmatch(r"[0-9a-f]{40}", spec.commit), name
        # the code checked out is the code the adapter follows (UMO-UNO runs UNO's code with UMO's weights)
        code_rev = adapter_class(spec.shares).capabilities.upstream_revision if spec.shares else caps.upstream_revision
        if name != "umo-omnigen2":
            assert spec.commit.startswith(code_rev), (name, spec.commit, code_rev)
        lines = read_lock(spec)
        assert lines and all(PIN.match(line) for line in lines), (name, [x for x in lines if not PIN.match(x)])
        names = {line.split("==")[0].lower() for line in lines}
        assert {"torch", "diffusers"} <= names or name == "id-patch" and {"torch", "tensorflow"} <= names
        # the import check is exactly what the worker script imports
        src = (WORKERS_DIR / adapter_class(name).worker_script).read_text()
        for stmt in spec.imports:
            assert stmt in src, (name, stmt)
        assert "GB" in spec.gpu and "torch" in spec.gpu


def test_lock_files_are_package_data():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"multiid_bench.adapters" = ["envs/*.txt", "envs/*.in"]' in pyproject
    assert all(lock_path(s).is_file() for s in SPECS.values())


def test_dry_run_prints_the_pinned_plan_for_all(tmp_path):
    res = CliRunner().invoke(cli, ["setup-env", "--all", "--dry-run", "--json", "--prefix", str(tmp_path / "e")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    plans = {p["adapter"]: p for p in json.loads(res.output)}
    assert sorted(plans) == WORKER_ADAPTERS
    uno = plans["uno"]
    assert uno["repository"] == "bytedance/UNO" and uno["commit"].startswith("d305981")
    assert uno["lock"].endswith("envs/uno.txt") and len(uno["lock_sha256"]) == 64
    cmds = "\n".join(uno["commands"])
    assert f"git -C {tmp_path / 'e' / 'uno' / 'repo'} checkout --detach {uno['commit']}" in cmds
    assert "-m pip install -r" in cmds or "uv pip install" in cmds
    assert "from uno.flux.pipeline import UNOPipeline, preprocess_ref" in cmds
    assert plans["umo"]["shares"] == "uno" and f"{tmp_path / 'e' / 'uno' / 'venv'}" in "\n".join(plans["umo"]["commands"])
    text = CliRunner().invoke(cli, ["setup-env", "instantid", "--dry-run"], catch_exceptions=False).output
    assert "instantX-research/InstantID @ 2145b67f" in text and "instantid.txt" in text and "GPU:" in text
    assert not (tmp_path / "e").exists()  # a dry run creates nothing
    bad = CliRunner().invoke(cli, ["setup-env", "omnigen", "--dry-run"])
    assert getattr(bad.exception, "exit_code", None) == 2 and "diffusers and API adapters" in str(bad.exception)


def _archive(tmp_path: Path) -> Path:
    root = tmp_path / "UNO-d305981"
    (root / "uno" / "flux").mkdir(parents=True)
    (root / "uno" / "flux" / "pipeline.py").write_text("UNOPipeline = preprocess_ref = None\n")
    out = tmp_path / "uno.tar.gz"
    with tarfile.open(out, "w:gz") as t:
        t.add(root, arcname=root.name)
    return out


def test_build_from_an_archive_records_the_env_that_generate_uses(tmp_path):
    spec = spec_for("uno")
    steps = plan(spec, tmp_path / "envs", source=str(_archive(tmp_path)), python=sys.executable,
                 overrides=["torch==2.13.0+cpu"], use_uv=False)
    calls = []

    def runner(argv, cwd=None, env=None, check=False):
        calls.append(argv)
        if argv[1:3] == ["-m", "venv"]:  # make the interpreter the record points at
            py = Path(argv[3]) / "bin" / "python"
            py.parent.mkdir(parents=True)
            py.write_text("#!/bin/sh\n")
        return type("Done", (), {"returncode": 0})()

    record = run_plan(spec, steps, overrides=["torch==2.13.0+cpu"], runner=runner, echo=lambda m: None)
    root = tmp_path / "envs" / "uno"
    assert (root / "repo" / "uno" / "flux" / "pipeline.py").is_file()  # the archive's top folder is stripped
    used = (root / "lock-used.txt").read_text().splitlines()
    assert "torch==2.13.0+cpu" in used and "torch==2.4.0" not in used and "diffusers==0.30.1" in used
    assert [c[1:3] for c in calls[:2]] == [["-m", "venv"], ["-m", "pip"]] and calls[1][-1] == str(root / "lock-used.txt")
    assert "from uno.flux.pipeline import" in calls[2][-1]
    records = read_records()
    assert set(records) == {"uno", "umo"} and records["umo"] == record
    assert record["commit"] == spec.commit and record["overrides"] == ["torch==2.13.0+cpu"]
    # the adapters find it with no flags (settings and environment variables still win)
    for name in ("uno", "umo"):
        python, repo, origin = get_adapter(name).environment()
        assert (python, repo, origin) == (str(root / "venv" / "bin" / "python"), str(root / "repo"),
                                          "mbench setup-env record")
    assert get_adapter("uno", python=sys.executable).environment()[0] == sys.executable


def test_a_failing_step_is_an_exit_3_error_naming_the_command(tmp_path):
    spec = spec_for("instantid")
    steps = plan(spec, tmp_path, source=str(tmp_path / "missing"), python=sys.executable, use_uv=False)
    with pytest.raises(EnvBuildError, match="does not exist") as info:
        run_plan(spec, steps, echo=lambda m: None)
    assert info.value.exit_code == 3
    src = tmp_path / "src"
    src.mkdir()
    steps = plan(spec, tmp_path / "e", source=str(src), python=sys.executable, use_uv=False)

    def runner(argv, cwd=None, env=None, check=False):
        return type("Done", (), {"returncode": 1 if "-c" in argv else 0})()

    with pytest.raises(EnvBuildError, match="import check.*failed with exit code 1.*pipeline_stable_diffusion_xl"):
        run_plan(spec, steps, runner=runner, echo=lambda m: None)
    assert read_records() == {}  # nothing recorded for an environment that does not import


def test_worker_scripts_import_nothing_from_the_toolkit():
    for spec in SPECS.values():
        tree = ast.parse((WORKERS_DIR / adapter_class(spec.name).worker_script).read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.startswith("multiid_bench") for m in mods)
