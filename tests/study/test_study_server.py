"""The study's definition, blinding, order recording and the server's rules (Starlette's in-process client).

Security: a rater sees and changes only their own answers; images only from STUDY/media by listed names;
an invalid submission is refused with 400 and writes nothing. Durability: WAL, and a killed server keeps
every submitted trial.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the study server needs pip install 'multiid-bench[study]'")
from starlette.testclient import TestClient  # noqa: E402

from multiid_bench.errors import ConfigError, NotComparableError  # noqa: E402
from multiid_bench.study import db  # noqa: E402
from multiid_bench.study.criteria import CRITERION_IDS  # noqa: E402
from multiid_bench.study.invite import invite_raters  # noqa: E402
from multiid_bench.study.server import build_app, is_loopback  # noqa: E402

# "ground-truth" is also page vocabulary (the GT photo); the other model and the run folders must not show
MODEL_NAMES = ("copy-reference", "copy_reference", "ground_truth")


def _answers(k: int, stars: int = 3) -> dict:
    return {"ratings": {str(s): {c: stars for c in CRITERION_IDS} for s in range(k)}}


def _rows(study: Path, sql: str, *args: object) -> list[tuple]:
    con = sqlite3.connect(db.db_path(study))
    try:
        return [tuple(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def test_create_records_definition_and_is_reproducible(make_study, demo_runs) -> None:
    a, b = make_study("a", seed=5), make_study("b", seed=5)
    con = db.connect(a)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [c["id"] for c in db.get_meta(con, "criteria")] == list(CRITERION_IDS)
        assert db.get_meta(con, "per_subset_taken") == {"p1": 3}
        excluded = db.get_meta(con, "excluded_cases")
        assert excluded and all("no row" in e["reason"] for e in excluded)  # --limit 3: the rest are listed
        keys = [json.loads(r["comparability"]) for r in con.execute("SELECT comparability FROM runs")]
        assert {k["profile"] for k in keys} == {"offline"} and len(keys) == 2
    finally:
        con.close()
    assert _rows(a, "SELECT case_id, position FROM trials") == _rows(b, "SELECT case_id, position FROM trials")
    invite_raters(a, 2)
    invite_raters(b, 2)
    order = "SELECT rater_id, trial_id, slot, run_id FROM presentations ORDER BY 1, 2, 3"
    assert _rows(a, order) == _rows(b, order)  # seeded and recorded
    orders = _rows(a, "SELECT rater_id, trial_id, GROUP_CONCAT(run_id) FROM (SELECT * FROM presentations ORDER BY "
                      "slot) GROUP BY 1, 2")
    assert len({o for *_, o in orders}) == 2  # both orders occur across raters and trials (seed 5)
    per_trial = _rows(a, "SELECT rater_id, trial_id, COUNT(DISTINCT run_id) FROM presentations GROUP BY 1, 2")
    assert all(n == 2 for *_, n in per_trial) and len(per_trial) == 2 * 3
    # media are content-addressed: no file name in the study names a model
    assert not any(m in p.name for p in (a / "media").iterdir() for m in MODEL_NAMES)


def test_create_refuses_one_run_and_mixed_runs(demo_runs, tmp_path) -> None:
    from multiid_bench.study.create import create_study

    with pytest.raises(ConfigError, match="at least two"):
        create_study(demo_runs[:1], tmp_path / "s")
    with pytest.raises(ConfigError, match="same model"):
        create_study([demo_runs[0], demo_runs[0]], tmp_path / "s")
    changed = tmp_path / "mixed"
    import shutil

    shutil.copytree(demo_runs[1], changed)
    data = json.loads((changed / "results.json").read_text())
    data["protocol"] = "paper"
    (changed / "results.json").write_text(json.dumps(data))
    with pytest.raises(NotComparableError, match="protocol"):
        create_study([demo_runs[0], changed], tmp_path / "s2")
    assert not (tmp_path / "s2").exists()


def test_rater_isolation_validation_and_blinding(make_study, demo_runs) -> None:
    study = make_study()
    (a, b) = invite_raters(study, 2)
    client = TestClient(build_app(study))
    page = client.get(f"/r/{a.token}")
    assert page.status_code == 200 and "Identity similarity" in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and "script-src 'self'" in page.headers[
        "content-security-policy"]
    trial = client.get(f"/api/{a.token}/trial/1").json()
    assert len(trial["results"]) == 2 and trial["answers"] == {}
    for text in (page.text, json.dumps(trial)):
        assert not any(m in text for m in (*MODEL_NAMES, *(str(r) for r in demo_runs)))  # blind
    assert client.post(f"/api/{a.token}/trial/1", json=_answers(2, 4)).status_code == 200
    assert client.get(f"/api/{a.token}/state").json()["next"] == 2

    # rater b cannot see a's answers, and b's submission touches only b's rows
    assert client.get(f"/api/{b.token}/trial/1").json()["answers"] == {}
    assert client.post(f"/api/{b.token}/trial/1", json=_answers(2, 1)).status_code == 200
    assert _rows(study, "SELECT DISTINCT stars FROM ratings WHERE rater_id = ?", a.rater_id) == [(4,)]
    assert client.get(f"/api/{a.token}/trial/1").json()["answers"]["0"]["id_sim"] == 4
    # no token, no access
    assert client.get("/api/not-a-token/trial/1").status_code == 404
    assert client.post("/api/not-a-token/trial/1", json=_answers(2)).status_code == 404

    before = _rows(study, "SELECT * FROM ratings ORDER BY 1, 2, 3, 4")
    forged = _answers(2)
    forged["ratings"]["0"]["bribery"] = forged["ratings"]["0"].pop("aesthetics")
    bad_bodies = [forged, _answers(2, 6), _answers(2, 0), {"ratings": {"0": _answers(1)["ratings"]["0"]}},
                  {"ratings": {**_answers(2)["ratings"], "7": _answers(1)["ratings"]["0"]}}, {"nope": 1}]
    as_text = _answers(2)
    as_text["ratings"]["1"]["prompt"] = "3"
    as_bool = _answers(2)
    as_bool["ratings"]["1"]["prompt"] = True
    as_float = _answers(2)
    as_float["ratings"]["1"]["prompt"] = 3.5
    for body in [*bad_bodies, as_text, as_bool, as_float]:
        r = client.post(f"/api/{a.token}/trial/2", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]
    assert client.post(f"/api/{a.token}/trial/2", content=b"{not json").status_code == 400
    assert client.post(f"/api/{a.token}/trial/2", content=b"x" * 70_000).status_code == 413
    assert client.post(f"/api/{a.token}/trial/99", json=_answers(2)).status_code == 404
    assert _rows(study, "SELECT * FROM ratings ORDER BY 1, 2, 3, 4") == before
    assert _rows(study, "SELECT COUNT(*) FROM submissions WHERE trial_id = 2") == [(0,)]


def test_images_only_from_the_study_media(make_study) -> None:
    study = make_study()
    (a,) = invite_raters(study, 1)
    client = TestClient(build_app(study))
    url = client.get(f"/api/{a.token}/trial/1").json()["gt"]
    ok = client.get(url)
    assert ok.status_code == 200 and ok.content == (study / "media" / url.rsplit("/", 1)[1]).read_bytes()
    name = url.rsplit("/", 1)[1]
    assert client.get(url.replace(a.token, "forged")).status_code == 404
    (study / "media" / ("0" * 64 + ".png")).write_bytes(ok.content)  # a file on disk the study does not list
    for path in (f"/media/{a.token}/..%2F{db.DB_NAME}", f"/media/{a.token}/%2E%2E%2F{db.DB_NAME}",
                 f"/media/{a.token}/{db.DB_NAME}", f"/media/{a.token}/..%2Fmedia%2F{name}",
                 f"/media/{a.token}/{'0' * 64}.png", f"/media/{a.token}/{name[:-4]}.svg"):
        r = client.get(path)
        assert r.status_code in (400, 404), path
        assert b"SQLite" not in r.content
    # ../ in the raw request line (a browser or httpx would normalise it away): refused by a real server
    from multiid_bench.study.server import StudyServer

    with StudyServer(study) as server:
        for target in (f"/media/{a.token}/../{db.DB_NAME}", f"/media/{a.token}/..%2F{db.DB_NAME}",
                       f"/static/../{db.DB_NAME}", f"/static/..%2F..%2F{db.DB_NAME}"):
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            assert reply.split(b" ", 2)[1] in (b"400", b"404"), (target, reply[:80])
            assert b"SQLite format" not in reply


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_server_keeps_submitted_trials(make_study) -> None:
    import httpx

    study = make_study()
    (a,) = invite_raters(study, 1)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "multiid_bench.cli.main", "study", "serve", str(study), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/{a.token}/state", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        for n in (1, 2):
            assert httpx.post(f"{base}/api/{a.token}/trial/{n}", json=_answers(2, n + 2), timeout=10).status_code == 200
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert _rows(study, "SELECT trial_id, COUNT(*), MIN(stars) FROM ratings GROUP BY 1 ORDER BY 1") == [
        (t, 2 * len(CRITERION_IDS), t + 2) for t in _trial_ids(study)[:2]]


def _trial_ids(study: Path) -> list[int]:
    return [r[0] for r in _rows(study, "SELECT id FROM trials ORDER BY position")]


def test_serve_warns_off_loopback(make_study, monkeypatch) -> None:
    import uvicorn

    from multiid_bench.study.server import serve

    study = make_study()
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    warnings: list[str] = []
    serve(study, "127.0.0.1", 8123, warn=warnings.append)
    assert warnings == [] and calls == [("127.0.0.1", 8123)]
    serve(study, "0.0.0.0", 8124, warn=warnings.append)
    assert len(warnings) == 1 and "reachable from other machines" in warnings[0] and calls[-1] == ("0.0.0.0", 8124)


def test_cli_create_and_invite(demo_runs, tmp_path, capsys) -> None:
    from click.testing import CliRunner

    from multiid_bench.cli.main import cli, main

    out = tmp_path / "s"
    res = CliRunner().invoke(cli, ["study", "create", *map(str, demo_runs), "--out", str(out), "--per-subset",
                                   "p1=2,p2=all", "--seed", "3"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "2 trials (p1=2, p2=0) x 2 methods, seed 3" in res.stdout
    assert "left out:" in res.stderr  # the cases the --limit runs do not have are listed
    with pytest.raises(SystemExit) as again:  # through main(): the error's exit code and message
        main(["study", "create", *map(str, demo_runs), "--out", str(out)])
    assert again.value.code == 2 and "already holds a study" in capsys.readouterr().err
    inv = CliRunner().invoke(cli, ["study", "invite", str(out), "--raters", "2", "--base-url", "http://h:9"],
                             catch_exceptions=False)
    lines = inv.stdout.strip().splitlines()
    assert inv.exit_code == 0 and len(lines) == 2 and all("\thttp://h:9/r/" in line for line in lines)
    tokens = [line.rsplit("/", 1)[1] for line in lines]
    raw = (out / db.DB_NAME).read_bytes() + b"".join(p.read_bytes() for p in out.glob(f"{db.DB_NAME}-*"))
    assert len(set(tokens)) == 2 and not any(t.encode() in raw for t in tokens)  # only hashes are stored


def test_failed_create_leaves_nothing(demo_runs, tmp_path, monkeypatch) -> None:
    from multiid_bench.study import create

    calls = []

    def broken_copy(con, folder, src, kind):
        calls.append(src)
        if len(calls) > 2:
            raise OSError(f"disk full while copying {src}")
        return real(con, folder, src, kind)

    real = create.copy_media
    monkeypatch.setattr(create, "copy_media", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        create.create_study(demo_runs, tmp_path / "s", per_subset={"p1": None})
    assert not (tmp_path / "s").exists()
    monkeypatch.setattr(create, "copy_media", real)
    create.create_study(demo_runs, tmp_path / "s", per_subset={"p1": None})
    assert db.get_meta(db.connect(tmp_path / "s"), "per_subset_taken") == {"p1": 3}


def test_table7_and_correlate_match_scipy(make_study, demo_runs, tmp_path, capsys) -> None:
    import random

    from study_helpers import scipy_table7

    from multiid_bench.cli.main import main
    from multiid_bench.study.results import study_results

    study = make_study()
    client = TestClient(build_app(study))
    rng = random.Random(11)
    for inv in invite_raters(study, 3):
        for n in (1, 2, 3):
            body = {"ratings": {str(s): {c: rng.randint(1, 5) for c in CRITERION_IDS} for s in range(2)}}
            assert client.post(f"/api/{inv.token}/trial/{n}", json=body).status_code == 200
    res = study_results(study, tmp_path / "out", formats=("png",))
    for criterion, metric in (("copy_paste", "copy_paste.dlib"), ("id_sim", "sim_gt.dlib")):
        row = next(r for r in res.table7 if r["metric"] == metric)
        want = scipy_table7(study, demo_runs, criterion, metric)
        assert row["n"] == want["n"] == 6
        for stat in ("pearson", "spearman", "kendall"):
            assert row[stat] == pytest.approx(want[stat], abs=1e-12), (metric, stat)
        assert row["paper_pearson"] in (0.4417, 0.3254)
        with pytest.raises(SystemExit) as done:
            main(["correlate", str(study / db.DB_NAME), "--metric", metric, "--within-case-ranks", "--json"])
        out = capsys.readouterr().out
        assert done.value.code == 0
        assert json.loads(out)["stats"]["kendall"][0] == pytest.approx(row["kendall"], abs=1e-12)
    assert (tmp_path / "out" / "fig8.png").stat().st_size > 0


def test_table7_refused_when_a_run_changed(demo_runs, tmp_path) -> None:
    import shutil

    from multiid_bench.study.create import create_study
    from multiid_bench.study.results import study_results

    runs = [shutil.copytree(r, tmp_path / r.name) for r in demo_runs]
    create_study(runs, tmp_path / "s", per_subset={"p1": None})
    (a,) = invite_raters(tmp_path / "s", 1)
    assert TestClient(build_app(tmp_path / "s")).post(f"/api/{a.token}/trial/1", json=_answers(2)).status_code == 200
    data = json.loads((runs[1] / "results.json").read_text())
    data["protocol"] = "paper"  # re-scored under another headline protocol after the raters saw the images
    (runs[1] / "results.json").write_text(json.dumps(data))
    res = study_results(tmp_path / "s", tmp_path / "out", formats=("png",))
    assert res.table7 == [] and any("comparability key changed" in n and "protocol" in n for n in res.notes)
    assert len(res.methods) == 2 * len(CRITERION_IDS)  # Fig. 8 and agreement are still computed
