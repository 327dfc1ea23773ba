"""--log-to tensorboard | wandb | mlflow: each tracker's own files read back equal results.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lb_fixtures import base_results, demo_cases, write_run

from multiid_bench.leaderboard.store import load_results
from multiid_bench.leaderboard.trackers import log_run, scalar_metrics


@pytest.fixture
def run(tmp_path: Path) -> Path:
    data = base_results(model="mine")
    data["metrics"]["paper"]["p1"]["clip_i"] = {"value": None, "n": 0, "ci95": None, "statistic": "mean"}
    return write_run(tmp_path / "run", data, demo_cases(tmp_path / "run"))


def _expected(run: Path) -> tuple[dict[str, float], int]:
    return scalar_metrics(load_results(run).data)


def test_scalars_are_every_non_null_metric_of_results_json(run) -> None:
    scalars, skipped = _expected(run)
    data = json.loads((run / "results.json").read_text())
    assert scalars["strict/p1/sim_gt.average"] == data["metrics"]["strict"]["p1"]["sim_gt.average"]["value"]
    assert "paper/p1/clip_i" not in scalars and skipped == 1  # null is "not computed", never a 0 on a dashboard


def test_tensorboard_events_read_back_with_tensorboards_reader(run, tmp_path) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'multiid-bench[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (logged,) = log_run(run, ["tensorboard"], log_dir=tmp_path / "tb")
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    expected, _ = _expected(run)
    got = {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}
    assert got.keys() == expected.keys() and logged.scalars == len(expected)
    assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())  # event files store float32
    images = acc.Tags()["images"]
    assert "tradeoff" in images and sum(t.startswith("gallery/") for t in images) == 4
    text = acc.Tensors("cases/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "| case_id | subset | status |" in text and "p1_0003" in text


def _wandb_records(path: Path) -> list:
    """The protobuf records of an offline ``run-*.wandb`` file (LevelDB log format, wandb's own protos)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk, payloads = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        body = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            payloads.append(body)
        elif kind == 2:
            chunk = body
        elif kind == 3:
            chunk += body
        elif kind == 4:
            payloads.append(chunk + body)
    records = []
    for p in payloads:
        r = pb.Record()
        r.ParseFromString(p)
        records.append(r)
    return records


def test_wandb_offline_run_reads_back_equal(run, tmp_path, monkeypatch) -> None:
    pytest.importorskip("wandb", reason="pip install 'multiid-bench[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (logged,) = log_run(run, ["wandb"], project="mbench-test")
    (file,) = Path(logged.where).glob("run-*.wandb")
    history = {}
    for r in _wandb_records(file):
        if r.WhichOneof("record_type") == "history":
            history.update({it.key or "/".join(it.nested_key): json.loads(it.value_json) for it in r.history.item})
    expected, _ = _expected(run)
    assert {k: history[k] for k in expected} == expected
    assert history["cases/_type"] == "table-file" and history["cases/nrows"] == 4
    assert history["tradeoff/_type"] == "image-file" and history["gallery/count"] == 4
    assert (Path(logged.where) / "files" / history["cases/path"]).is_file()


def test_mlflow_local_file_store_reads_back_equal(run, tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow", reason="pip install 'multiid-bench[mlflow]'")
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    (logged,) = log_run(run, ["mlflow"], project="mbench-test")
    run_id = logged.where.split(" @ ")[0]
    got = MlflowClient(uri).get_run(run_id)
    expected, _ = _expected(run)
    assert got.data.metrics == pytest.approx(expected)
    assert got.data.tags["mbench.model"] == "mine"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run_id)}
    assert {"cases.csv", "results.json", "plots", "gallery"} <= artifacts


def test_log_to_on_score_logs_the_finished_run_and_fails_early_without_the_package(run, tmp_path, monkeypatch) -> None:
    pytest.importorskip("tensorboard", reason="pip install 'multiid-bench[tensorboard]'")
    from multiid_bench import api
    from multiid_bench.cli.main import cli, main

    monkeypatch.setattr(api, "score", lambda *a, **k: api.Run(run, load_results(run).data, 4))
    images = tmp_path / "imgs"
    images.mkdir()
    res = CliRunner().invoke(cli, ["score", "--images", str(images), "--bench", "demo", "--log-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    assert f"logged to tensorboard: {run / 'tensorboard'}" in res.stderr and list((run / "tensorboard").glob("events.*"))

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    called = []
    monkeypatch.setattr(api, "score", lambda *a, **k: called.append(1))
    with pytest.raises(SystemExit) as e:
        main(["score", "--images", str(images), "--bench", "demo", "--log-to", "wandb"])
    assert e.value.code == 3 and not called  # before any scoring


@pytest.mark.slow
def test_identity_score_logs_each_compute_at_its_step_to_every_tracker(tmp_path, monkeypatch) -> None:
    """A validation loop: ``IdentityScore(log_to=...)``; each tracker's own reader gives back ``compute()``'s dicts."""
    for package in ("tensorboard", "wandb", "mlflow"):
        pytest.importorskip(package, reason=f"pip install 'multiid-bench[{package}]'")
    import mlflow
    from mlflow.tracking import MlflowClient
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import multiid_bench as mb
    from multiid_bench.data.loaders import load_bench

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)

    metric = mb.IdentityScore(profile="offline", device="cpu", cache_dir=str(tmp_path / "cache"),
                              log_to=("tensorboard", "wandb", "mlflow"), log_dir=tmp_path / "tb", project="mbench-val")
    cases = load_bench("demo").cases[:3]
    images = [(Image.open(c.gt), [Image.open(r) for r in c.refs]) for c in cases]
    for gt, refs in images[:2]:  # the GT pasted back: identity without copy-paste
        metric.update(gt, gt, refs)
    computed = {100: metric.compute(step=100)}
    gt, refs = images[2]
    metric.update(refs[0], gt, refs)  # a copy of the reference: the numbers move
    computed[250] = metric.compute(step=250)
    where = dict(metric.logger.where)
    metric.close()
    assert computed[100] != computed[250] and None not in computed[100].values()
    expected = {f"paper/all/{k}": {step: d[k] for step, d in computed.items()} for k in computed[100]}

    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tensorboard = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    assert tensorboard.keys() == expected.keys() and where["tensorboard"] == str(tmp_path / "tb")
    assert all(tensorboard[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())  # float32 events

    (file,) = Path(where["wandb"]).glob("run-*.wandb")
    wandb_history: dict[str, dict[int, float]] = {}
    for r in _wandb_records(file):
        if r.WhichOneof("record_type") == "history":
            for it in r.history.item:
                key = it.key or "/".join(it.nested_key)
                if not key.startswith("_"):
                    wandb_history.setdefault(key, {})[r.history.step.num] = json.loads(it.value_json)
    assert wandb_history == expected

    run_id = where["mlflow"].split(" @ ")[0]
    client = MlflowClient(uri)
    mlflow_history = {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in expected}
    assert mlflow_history == expected
    assert client.get_run(run_id).info.status == "FINISHED"  # the run opened by IdentityScore is closed


def test_identity_score_refuses_an_unknown_or_missing_tracker_before_scoring(monkeypatch) -> None:
    import importlib.util

    import multiid_bench as mb
    from multiid_bench.errors import ConfigError, MissingDependencyError

    with pytest.raises(ConfigError, match="'neptune': known trackers are tensorboard, wandb, mlflow"):
        mb.IdentityScore(profile="offline", device="cpu", log_to=("neptune",))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'multiid-bench\[wandb\]'"):
        mb.IdentityScore(profile="offline", device="cpu", log_to="wandb")


def test_score_logger_joins_the_loops_own_mlflow_run_and_leaves_it_open(tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow", reason="pip install 'multiid-bench[mlflow]'")
    import mlflow
    from mlflow.tracking import MlflowClient

    from multiid_bench.leaderboard.trackers import ScoreLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("training")
    with mlflow.start_run() as training:
        mlflow.log_metric("loss", 0.3, step=3)
        logger = ScoreLogger(["mlflow"])
        assert logger.log({"sim_gt.dlib": 0.5, "blend_gt.dlib": None}, 3, protocol="paper", subset="p1") == (1, 1)
        logger.close()
        assert mlflow.active_run().info.run_id == training.info.run_id  # the loop's run: not ended by close()
    assert logger.where["mlflow"] == f"{training.info.run_id} @ {uri}"
    got = MlflowClient(uri).get_run(training.info.run_id).data.metrics
    assert got == {"loss": 0.3, "paper/p1/sim_gt.dlib": 0.5}  # None is not logged as a number
