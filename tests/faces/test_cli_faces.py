"""`mbench faces`: faces, similarities and the annotated picture, offline; missing weights exit 3 early."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from multiid_bench.cli.main import cli
from multiid_bench.errors import ImageDecodeError, MissingWeightsError


def test_faces_offline_json_and_picture(t1_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "t1_faces.png"
    res = CliRunner().invoke(cli, ["faces", str(t1_path), "--json", "--save", str(out), "--offline"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    faces = data["images"][0]["faces"]["mtcnn"]
    assert len(faces) == 6 and data["images"][0]["size"] == [1280, 886]
    assert len(data["images"][0]["rejected"]["mtcnn"]) >= 1  # near-misses are shown, not silently dropped
    sim = np.array(data["models"]["dlib"]["similarity"])
    assert sim.shape == (6, 6) and np.allclose(np.diag(sim), 1.0, atol=1e-5)
    assert data["models"]["dlib"]["card"]["embedding_dim"] == 128
    from PIL import Image

    assert Image.open(data["saved"]).size == (round(1280 * 512 / 886), 512)


def test_faces_errors(tmp_path: Path, t1_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"")
    res = CliRunner().invoke(cli, ["faces", str(bad)])
    assert isinstance(res.exception, ImageDecodeError) and "broken.jpg" in str(res.exception)
    res = CliRunner().invoke(cli, ["faces", str(t1_path), "--profile", "paper", "--offline",
                                   "--cache-dir", str(tmp_path)])
    assert isinstance(res.exception, MissingWeightsError) and res.exception.exit_code == 3
    text = str(res.exception)
    for wid in ("insightface-buffalo-l", "retinaface-r50-facexlib", "adaface-ir50-ms1mv2", "facenet-vggface2"):
        assert f"\n  {wid} / " in text  # all listed at once (one line per file), before any model loads
    assert "mbench weights download insightface-buffalo-l retinaface-r50-facexlib" in text


def test_faces_tiny_images_exit_0_with_no_face(tmp_path: Path) -> None:
    from PIL import Image

    from multiid_bench.faces.inspect import InspectResult

    paths = []
    for side in (1, 2, 64):
        paths.append(tmp_path / f"img{side}.png")
        Image.new("RGB", (side, side), (128, 128, 128)).save(paths[-1])
    res = CliRunner().invoke(cli, ["faces", *map(str, paths), "--offline"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and res.exception is None, res.output
    assert res.output.count("no face (image too small for the detector)") == 2  # 1x1 and 2x2
    assert res.output.count("no face") == 4 and "dlib: no faces to compare" in res.output
    assert "Traceback" not in res.output
    # --json carries the reason per image and detector
    r = InspectResult(paths=["a", "b"], sha256=["0", "1"], sizes=[(1, 1), (64, 64)], entries=[],
                      faces={"mtcnn": [[], []]}, no_face_reason={"mtcnn": ["image too small for the detector", None]})
    assert [im["no_face_reason"] for im in r.to_dict()["images"]] == [
        {"mtcnn": "image too small for the detector"}, {"mtcnn": None}]
