"""Hub-hosted weights resolve through the Hugging Face cache: found in place offline, never copied, sha256-checked."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.weights import WeightStore, hf_hub_cache
from tests.weights.conftest import git_oid

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DATA = b"safetensors-bytes" * 4096
CONFIG = b'{"hidden_size": 8}\n'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_tree(cache: Path, repo: str, files: dict[str, tuple[bytes, bool]], *, commit: str = COMMIT,
            ref: str = "main", etags: dict[str, str] | None = None) -> Path:
    """The real layout: models--org--name/{blobs/<etag>, snapshots/<commit>/<path> -> blob, refs/<ref>}."""
    d = cache / f"models--{repo.replace('/', '--')}"
    for name, (data, lfs) in files.items():
        etag = (etags or {}).get(name) or (sha(data) if lfs else git_oid(data))
        blob = d / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = d / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (d / "refs").mkdir(parents=True, exist_ok=True)
    (d / "refs" / ref).write_text(commit)
    return d


def manifest(tmp_path: Path, files: str, wid: str = "m") -> Path:
    d = tmp_path / "manifests"
    d.mkdir(parents=True, exist_ok=True)
    (d / "t.toml").write_text(f'[[weights]]\nid = "{wid}"\ndescription = "d"\nlicence = "MIT"\nused_by = ["t"]\n'
                              f"files = [{files}]\n")
    return d


def hub_file(name: str = "model.safetensors", *, revision: str = COMMIT, sha256: str = "") -> str:
    hashed = f'sha256 = "{sha256}"' if sha256 else 'sha256 = "", sha256_note = "Hub LFS"'
    return f'{{ name = "{name}", repo = "org/model", filename = "{name}", revision = "{revision}", {hashed} }}'


def store(tmp_path: Path, files: str, **kw) -> WeightStore:
    return WeightStore(tmp_path / "mb", manifest_dirs=[manifest(tmp_path, files)], **kw)


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_file_in_hf_cache_resolves_offline_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert hf_hub_cache() == tmp_path / "hfhome" / "hub"  # HF_HOME/hub, read at call time
    repo_dir = hf_tree(hf_hub_cache(), "org/model", {"model.safetensors": (DATA, True)})
    before = all_files(repo_dir)
    info = store(tmp_path, hub_file(), offline=True).resolve_file("m")
    assert info.path == repo_dir / "snapshots" / COMMIT / "model.safetensors"  # inside the HF cache
    assert info.path.resolve() == repo_dir / "blobs" / sha(DATA)
    assert (info.location, info.commit, info.sha256, info.sha256_source, info.pinned) == (
        "hf-cache", COMMIT, sha(DATA), "hf-cache-etag", True)
    assert all_files(repo_dir) == before  # nothing written into the HF cache
    copies = [p for p in all_files(tmp_path / "mb") if p.read_bytes() == DATA]
    assert copies == []  # and nothing copied into mbench's cache
    assert [s.location for s in store(tmp_path, hub_file(), offline=True).status("m")] == ["hf-cache"]


def test_hf_hub_cache_env_wins_over_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "mirror"))
    hf_tree(tmp_path / "mirror", "org/model", {"model.safetensors": (DATA, True)})
    path = store(tmp_path, hub_file(), offline=True).resolve("m")
    assert path.is_relative_to(tmp_path / "mirror")


def test_wrong_file_is_refused_by_its_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    other = DATA[:-1] + b"!"
    # 1. the manifest's sha256 names DATA, the cache holds another file at that commit
    repo_dir = hf_tree(tmp_path / "hf", "org/model", {"model.safetensors": (other, True)})
    with pytest.raises(MissingWeightsError) as ei:
        store(tmp_path, hub_file(sha256=sha(DATA)), offline=True).resolve("m")
    assert f"has sha256 {sha(other)}, expected {sha(DATA)}" in str(ei.value)
    assert "mbench weights download --force m" in str(ei.value)
    assert (repo_dir / "blobs" / sha(other)).is_file()  # the HF cache is not ours to delete from
    # 2. no manifest hash: the blob's own name (the Hub's LFS sha256) catches a damaged blob
    blob = repo_dir / "blobs" / sha(other)
    blob.write_bytes(DATA)  # contents no longer match the name
    with pytest.raises(MissingWeightsError, match=f"has sha256 {sha(DATA)}, expected {sha(other)}"):
        store(tmp_path / "2", hub_file(), offline=True).resolve("m")
    st = store(tmp_path / "3", hub_file(), offline=True).status("m")
    assert [s.state for s in st] == ["corrupt"]


def test_small_git_file_is_checked_by_its_git_blob_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    repo_dir = hf_tree(tmp_path / "hf", "org/model", {"config.json": (CONFIG, False)})
    info = store(tmp_path, hub_file("config.json"), offline=True).resolve_file("m")
    assert (info.sha256, info.sha256_source) == (sha(CONFIG), "git-sha1")
    (repo_dir / "blobs" / git_oid(CONFIG)).write_bytes(b'{"hidden_size": 9}\n')
    with pytest.raises(MissingWeightsError, match=f"git blob id .* != Hub's {git_oid(CONFIG)}"):
        store(tmp_path / "b", hub_file("config.json"), offline=True).resolve("m")


def test_missing_offline_names_the_hf_cache_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    s = store(tmp_path, hub_file(), offline=True)
    [m] = s.preflight(["m"])
    assert m.target == tmp_path / "hf" / "models--org--model" / "snapshots" / COMMIT / "model.safetensors"
    with pytest.raises(MissingWeightsError) as ei:
        s.resolve("m")
    assert str(ei.value).splitlines()[1] == f"  m / model.safetensors  size ?  from hf.co/org/model@{COMMIT[:8]}"


def test_unpinned_revision_is_flagged_and_refused_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            fake_hub) -> None:
    hf_tree(tmp_path / "hf", "org/model", {"model.safetensors": (DATA, True)})
    s = store(tmp_path, hub_file(revision="main"), offline=True)
    info = s.resolve_file("m")  # refs/main -> the commit; usable, but flagged
    assert (info.commit, info.pinned) == (COMMIT, False)
    assert [st.pinned for st in s.status("m")] == [False]
    monkeypatch.setenv("MBENCH_REQUIRE_PINNED", "1")
    fresh = WeightStore(tmp_path / "mb2", manifest_dirs=[manifest(tmp_path / "x", hub_file("other.bin", revision="main"))])
    with pytest.raises(ConfigError, match="revision 'main' of org/model is not a commit.*MBENCH_REQUIRE_PINNED"):
        fresh.resolve("m")
    assert fake_hub.requests == []  # refused before any network access


def test_download_goes_into_the_hf_cache_through_hf_hub_download(tmp_path: Path, fake_hub) -> None:
    fake_hub.add("org/model", COMMIT, {"model.safetensors": (DATA, True), "config.json": (CONFIG, False)})
    s = store(tmp_path, hub_file() + ", " + hub_file("config.json"), hub_api=fake_hub)
    info = s.resolve_file("m", "model.safetensors")
    repo_dir = tmp_path / "hf" / "models--org--model"
    assert info.path == repo_dir / "snapshots" / COMMIT / "model.safetensors"
    assert info.path.read_bytes() == DATA and info.path.resolve() == repo_dir / "blobs" / sha(DATA)
    assert (info.sha256_source, info.commit) == ("hub-lfs", COMMIT)  # expected hash from get_paths_info
    cfg = s.resolve_file("m", "config.json")
    assert (cfg.sha256, cfg.sha256_source) == (sha(CONFIG), "git-sha1")
    assert [p for p in all_files(tmp_path / "mb") if p.read_bytes() in (DATA, CONFIG)] == []  # stored once
    n = len(fake_hub.requests)
    assert s.resolve("m", "model.safetensors") == info.path and len(fake_hub.requests) == n  # cached: no request


def test_download_that_disagrees_with_the_manifest_is_refused(tmp_path: Path, fake_hub) -> None:
    fake_hub.add("org/model", COMMIT, {"model.safetensors": (DATA, True)})
    s = store(tmp_path, hub_file(sha256="ab" * 32), hub_api=fake_hub)
    with pytest.raises(MissingWeightsError) as ei:
        s.resolve("m")
    assert f"has sha256 {sha(DATA)}, expected {'ab' * 32}" in str(ei.value)


def test_snapshot_folder_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    folder = ('{ name = "pipe", repo = "org/model", revision = "' + COMMIT + '", sha256 = "", sha256_note = "folder", '
              'allow_patterns = ["model_index.json", "transformer/*"] }')
    s = store(tmp_path, folder, offline=True)
    assert [m.name for m in s.preflight(["m"])] == ["pipe"]
    hf_tree(tmp_path / "hf", "org/model", {"model_index.json": (CONFIG, False)})
    assert [m.name for m in s.preflight(["m"])] == ["pipe"]  # transformer/* still missing
    hf_tree(tmp_path / "hf", "org/model", {"transformer/w.safetensors": (DATA, True)})
    info = s.resolve_file("m")
    assert info.path == tmp_path / "hf" / "models--org--model" / "snapshots" / COMMIT and info.location == "hf-cache"
    assert [st.state for st in s.status("m", full_hash=True)] == ["ok"]
    (tmp_path / "hf" / "models--org--model" / "blobs" / sha(DATA)).write_bytes(b"x")
    assert [st.state for st in store(tmp_path / "c", folder, offline=True).status("m", full_hash=True)] == ["corrupt"]
    with pytest.raises(MissingWeightsError, match="w.safetensors has sha256"):
        store(tmp_path / "b", folder, offline=True).resolve("m")


def test_gated_repo_says_how_to_get_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    class GatedRepoError(Exception):  # huggingface_hub's class needs an HTTP response; the name is what counts
        pass

    def gated(**kw):
        raise GatedRepoError("Access to model org/model is restricted.")

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    s = store(tmp_path, hub_file(sha256="ab" * 32))
    with pytest.raises(MissingWeightsError) as ei:
        s.resolve("m")
    line = str(ei.value).splitlines()[1]
    assert line.startswith(f"  m / model.safetensors  size ?  from hf.co/org/model@{COMMIT[:8]}  [download failed: "
                           f"hf://org/model@{COMMIT}: GatedRepoError -- accept the licence on the model page, then "
                           "`hf auth login` or set HF_TOKEN; Access to model org/model is restricted.")


def test_the_package_manifests_find_clip_and_siglip_in_an_existing_hf_cache(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: a machine whose HF cache already holds open_clip_model.safetensors (and SigLIP)."""
    from multiid_bench.weights import get_store
    from multiid_bench.weights.manifest import load_manifests

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    clip_dir = hf_tree(hf_hub_cache(), "timm/vit_base_patch16_clip_224.openai",
                       {"open_clip_model.safetensors": (DATA, True)})  # refs/main -> COMMIT (entry is at main)
    so400m = load_manifests()["siglip-so400m-patch14-384"]
    commit = so400m.file("model.safetensors").revision
    config = b"{" + b" " * 574 + b"}"  # the manifest records config.json's size (576 bytes); it is checked
    hf_tree(hf_hub_cache(), "google/siglip-so400m-patch14-384",
            {"config.json": (config, False), "model.safetensors": (DATA, True)}, commit=commit)
    s = get_store(tmp_path / "mb", offline=True)
    clip = s.resolve_file("clip-vit-b-16-openai")
    assert clip.path == clip_dir / "snapshots" / COMMIT / "open_clip_model.safetensors"
    assert (clip.location, clip.commit, clip.pinned) == ("hf-cache", COMMIT, False)
    cfg, weights = (s.resolve("siglip-so400m-patch14-384", n) for n in ("config.json", "model.safetensors"))
    assert cfg.parent == weights.parent == (hf_hub_cache() / "models--google--siglip-so400m-patch14-384"
                                           / "snapshots" / commit)  # one folder, as from_pretrained wants
    assert s.preflight(["clip-vit-b-16-openai", "siglip-so400m-patch14-384"]) == []
    assert not (tmp_path / "mb" / "weights" / "clip-vit-b-16-openai").exists()
