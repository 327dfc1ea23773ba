"""Weight store: manifests merge, cache root precedence, verified streaming downloads, offline preflight."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.weights import (
    MANIFEST_DIR,
    WeightStore,
    cache_root,
    env_override_name,
    get_store,
    load_manifests,
    verify_file,
)

PAYLOAD = bytes(range(256)) * 12_000  # ~3 MB: several 1 MiB chunks, so streaming is exercised


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(folder: Path, body: str, name: str = "test.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)
    return folder


def entry(wid: str, files: str) -> str:
    return f'[[weights]]\nid = "{wid}"\ndescription = "d"\nlicence = "MIT"\nused_by = ["t"]\nfiles = [{files}]\n'


def store(tmp_path: Path, body: str, **kw) -> WeightStore:
    return WeightStore(tmp_path / "cache", manifest_dirs=[manifest(tmp_path / "m", body)], **kw)


# ---- manifests ------------------------------------------------------------------------------------
def test_package_manifests_parse_and_every_file_is_merged(tmp_path: Path) -> None:
    entries = load_manifests()
    assert {"insightface-buffalo-l", "mtcnn-facenet-pytorch", "dlib-face-recognition-v1"} <= set(entries)
    assert all(Path(e.source).parent == MANIFEST_DIR for e in entries.values())
    d = tmp_path / "m"
    manifest(d, entry("a", '{ name = "a.bin", sha256 = "' + "0" * 64 + '", urls = ["http://x/a"] }'), "one.toml")
    manifest(d, entry("b", '{ name = "b.bin", sha256 = "", sha256_note = "none upstream", urls = ["http://x/b"] }'),
             "two.toml")
    assert set(load_manifests([d])) == {"a", "b"}  # a new file is picked up with no code change


def test_manifest_validation_errors_name_the_file(tmp_path: Path) -> None:
    d = tmp_path / "m"
    manifest(d, entry("a", '{ name = "a.bin", sha256 = "", urls = ["http://x/a"] }'))
    with pytest.raises(ConfigError, match=r"test\.toml weights 'a'.*sha256 is empty.*sha256_note"):
        load_manifests([d])
    manifest(d, entry("a", '{ name = "a.bin", sha256 = "' + "0" * 64 + '", urls = ["http://x/a"] }'))
    manifest(d, entry("a", '{ name = "a.bin", sha256 = "' + "1" * 64 + '", urls = ["http://x/a"] }'), "z.toml")
    with pytest.raises(ConfigError, match=r"defined twice: in .*test\.toml and .*z\.toml"):
        load_manifests([d])


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_root() == (tmp_path / "home" / ".cache" / "multiid-bench").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == (tmp_path / "xdg" / "multiid-bench").resolve()
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path / "mb"))
    assert cache_root() == (tmp_path / "mb").resolve()
    assert cache_root(tmp_path / "flag") == (tmp_path / "flag").resolve()


# ---- downloads ------------------------------------------------------------------------------------
def test_streaming_download_verifies_and_renames_atomically(tmp_path: Path, http_root) -> None:
    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    s = store(tmp_path, entry("w", f'{{ name = "w.bin", size = {len(PAYLOAD)}, sha256 = "{sha(PAYLOAD)}", '
                                  f'urls = ["{base}/missing.bin", "{base}/w.bin"] }}'))
    calls: list[tuple[int, int | None]] = []
    path = s.resolve("w", progress=lambda wid, name, done, total: calls.append((done, total)))
    assert path == tmp_path / "cache" / "weights" / "w" / "w.bin"
    assert path.read_bytes() == PAYLOAD and verify_file(path, sha(PAYLOAD))
    assert len(calls) >= 3 and calls[-1] == (len(PAYLOAD), len(PAYLOAD))  # streamed in chunks
    assert not list(path.parent.glob("*.partial"))
    assert [st.state for st in s.status("w", full_hash=True)] == ["ok"]


def test_checksum_mismatch_deletes_and_says_so(tmp_path: Path, http_root) -> None:
    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    s = store(tmp_path, entry("w", f'{{ name = "w.bin", sha256 = "{"ab" * 32}", urls = ["{base}/w.bin"] }}'))
    with pytest.raises(MissingWeightsError) as ei:
        s.resolve("w")
    msg = str(ei.value)
    assert f"sha256 {sha(PAYLOAD)} != expected {'ab' * 32}; deleted the download" in msg
    assert f"mbench weights download w --cache-dir {(tmp_path / 'cache').resolve()}" in msg
    assert not any((tmp_path / "cache" / "weights" / "w").iterdir())  # neither target nor .partial left
    assert ei.value.exit_code == 3


def test_corrupted_cached_file_is_caught_by_checksum(tmp_path: Path, http_root) -> None:
    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    body = entry("w", f'{{ name = "w.bin", sha256 = "{sha(PAYLOAD)}", urls = ["{base}/w.bin"] }}')
    path = store(tmp_path, body).resolve("w")
    path.write_bytes(PAYLOAD[:-1] + b"\x00")  # bit rot / truncated copy
    with pytest.raises(MissingWeightsError, match=r"has sha256 .* expected .*deleted it"):
        store(tmp_path, body, offline=True).resolve("w")
    assert not path.exists()
    assert store(tmp_path, body).resolve("w").read_bytes() == PAYLOAD  # online: fetched again


def test_unknown_upstream_hash_is_recorded_on_first_download(tmp_path: Path, http_root) -> None:
    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    body = entry("w", f'{{ name = "w.bin", sha256 = "", sha256_note = "none", urls = ["{base}/w.bin"] }}')
    s = store(tmp_path, body)
    path = s.resolve("w")
    assert s.expected_sha256("w") == sha(PAYLOAD)
    assert s.status("w")[0].state == "unverified"
    path.write_bytes(b"tampered")
    with pytest.raises(MissingWeightsError, match="expected " + sha(PAYLOAD)):
        store(tmp_path, body, offline=True).resolve("w")


def test_zip_member_download(tmp_path: Path, http_root) -> None:
    root, base = http_root
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pack/model.onnx", PAYLOAD)
        zf.writestr("pack/other.onnx", b"x")
    (root / "pack.zip").write_bytes(buf.getvalue())
    s = store(tmp_path, entry("p", f'{{ name = "model.onnx", sha256 = "{sha(PAYLOAD)}", '
                                  f'archive_urls = ["{base}/pack.zip"], member = "model.onnx" }}'))
    assert s.resolve("p").read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "cache" / "weights" / "p").iterdir()) == [
        ".model.onnx.verified.json", "model.onnx"]


# ---- offline and overrides ------------------------------------------------------------------------
def test_offline_preflight_lists_every_missing_file_before_loading(tmp_path: Path, monkeypatch) -> None:
    body = entry("a", '{ name = "a.bin", sha256 = "' + "0" * 64 + '", urls = ["http://127.0.0.1:9/a"] }') + entry(
        "b", '{ name = "b1.bin", sha256 = "' + "1" * 64 + '", urls = ["http://127.0.0.1:9/b"] }, '
             '{ name = "b2.bin", sha256 = "' + "2" * 64 + '", urls = ["http://127.0.0.1:9/b2"] }')
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    s = store(tmp_path, body)
    assert s.offline
    missing = s.preflight(["a", "b"])
    assert [(m.weight_id, m.name) for m in missing] == [("a", "a.bin"), ("b", "b1.bin"), ("b", "b2.bin")]
    assert missing[1].target == tmp_path / "cache" / "weights" / "b" / "b1.bin"
    assert missing[1].command == f"mbench weights download b --cache-dir {(tmp_path / 'cache').resolve()}"
    with pytest.raises(MissingWeightsError) as ei:
        s.ensure(["a", "b"])
    lines = str(ei.value).splitlines()
    assert lines[0] == "3 model weight files missing (offline; sizes not in the manifests)"
    assert lines[1:4] == ["  a / a.bin  size ?  from 127.0.0.1:9/a", "  b / b1.bin  size ?  from 127.0.0.1:9/b",
                          "  b / b2.bin  size ?  from 127.0.0.1:9/b2"]
    assert f"mbench weights download a b --cache-dir {(tmp_path / 'cache').resolve()}" in lines[5]
    assert ei.value.missing == tuple(missing)  # structured, for callers that merge lists
    monkeypatch.delenv("MBENCH_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match=r"^1 model weight file missing \(offline;"):
        store(tmp_path, body).resolve("a")


def test_failed_download_lists_attempts(tmp_path: Path) -> None:
    s = store(tmp_path, entry("a", '{ name = "a.bin", sha256 = "' + "0" * 64 + '", urls = ["http://127.0.0.1:9/a"] }'))
    with pytest.raises(MissingWeightsError,
                       match=r"could not fetch: 1 model .*\n  a / a\.bin .*\[download failed: http://127\.0\.0\.1:9/a: URLError"):
        s.resolve("a")


def test_local_override_is_still_checksummed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = entry("my-model", f'{{ name = "m.bin", sha256 = "{sha(PAYLOAD)}", urls = ["http://127.0.0.1:9/m"] }}')
    good = tmp_path / "good.bin"
    good.write_bytes(PAYLOAD)
    assert env_override_name("my-model") == "MBENCH_WEIGHTS_MY_MODEL"
    monkeypatch.setenv("MBENCH_WEIGHTS_MY_MODEL", str(good))
    assert store(tmp_path, body, offline=True).resolve("my-model") == good
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "m.bin").write_bytes(PAYLOAD)
    assert store(tmp_path, body, overrides={"my-model": folder}).resolve("my-model") == folder / "m.bin"
    assert [p.name for p in folder.iterdir()] == ["m.bin"]  # nothing is written next to a user's file
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"other")
    monkeypatch.setenv("MBENCH_WEIGHTS_MY_MODEL", str(bad))
    with pytest.raises(MissingWeightsError, match=r"bad\.bin has sha256"):
        store(tmp_path, body).resolve("my-model")
    assert bad.exists()  # a user's own file is never deleted
    with pytest.raises(ConfigError, match="unknown weight id"):
        store(tmp_path, body, overrides={"nope": good})


def test_bundled_package_weights_resolve_offline_and_verify() -> None:
    s = get_store(offline=True)
    for wid in ("mtcnn-facenet-pytorch", "dlib-face-recognition-v1"):
        for f in s.entry(wid).files:
            p = s.resolve(wid, f.name)
            assert p.is_file() and verify_file(p, f.sha256)
            assert not (p.parent / f".{p.name}.verified.json").exists()  # the installed package stays untouched
    assert s.preflight(["mtcnn-facenet-pytorch", "dlib-face-recognition-v1"]) == []
    with pytest.raises(ConfigError, match="Did you mean: mtcnn-facenet-pytorch"):
        s.entry("mtcnn-facenet-pytorc")


def test_unpinned_hub_entries_are_a_known_list_that_only_shrinks() -> None:
    """Every Hub entry must name a commit; these predate `mbench weights pin` (no Hub access where written).

    A new Hub entry must come pinned: run `mbench weights pin ID` and commit the manifest. Remove a line
    here once its entry is pinned.
    """
    from multiid_bench.weights import is_pinned

    entries = load_manifests()
    unpinned = sorted(f"{e.id}/{f.name}" for e in entries.values() for f in e.files if f.hub and not is_pinned(f.revision))
    assert unpinned == [
        "clip-vit-b-16-openai/open_clip_model.safetensors", "flux1-dev-diffusers/FLUX.1-dev",
        "flux1-dev/ae.safetensors", "flux1-dev/flux1-dev.safetensors",
        "flux1-kontext-dev/flux1-kontext-dev.safetensors", "insightface-antelopev2/glintr100.onnx",
        "insightface-antelopev2/scrfd_10g_bnkps.onnx", "siglip-base-patch16-256-multilingual/config.json",
        "siglip-base-patch16-256-multilingual/model.safetensors", "withanyone-flux1-dev/withanyone.safetensors",
    ]
    s = get_store(offline=True)
    assert [st.pinned for st in s.status("clip-vit-b-16-openai")] == [False]
    assert [st.pinned for st in s.status("siglip-so400m-patch14-384")] == [True, True]


def test_failures_of_every_source_with_one_cause_are_said_once(tmp_path: Path) -> None:
    urls = '"http://127.0.0.1:9/a", "http://127.0.0.1:9/b"'
    s = store(tmp_path, entry("a", '{ name = "a.bin", sha256 = "' + "0" * 64 + f'", urls = [{urls}] }}'))
    with pytest.raises(MissingWeightsError) as ei:
        s.resolve("a")
    assert str(ei.value).splitlines()[1] == (
        "  a / a.bin  size ?  from 127.0.0.1:9/a  [download failed: 2 sources, each: URLError: "
        "<urlopen error [Errno 111] Connection refused>]")
