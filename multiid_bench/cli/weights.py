"""``mbench weights list|download|verify|path|pin`` and ``mbench doctor``.

Every model file comes from the manifests (``multiid_bench/weights/manifests/*.toml``). Hub files live in
the Hugging Face cache, the others in mbench's; everything is sha256-checked. ``doctor`` says what is
installed, which devices exist, whether the cache is writable and what a face profile still needs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from multiid_bench.cli._common import print_table as _table

from multiid_bench.errors import CheckFailedError, MissingWeightsError

__all__ = ["doctor", "weights"]

_CACHE = click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                      help="Cache root (default: $MBENCH_HOME, else $XDG_CACHE_HOME/multiid-bench).")
_JSON = click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def weights() -> None:
    """List, download, verify and locate model weights.

    \b
    Examples:
      mbench weights list
      mbench weights download insightface-buffalo-l adaface-ir50-ms1mv2
      mbench weights verify --all
      mbench weights path facenet-vggface2
    """


@weights.command("list")
@_JSON
@_CACHE
def list_(as_json: bool, cache_dir: str | None) -> None:
    """Every weight file: where it lives (hf-cache, mbench-cache, package, missing), size, state, pin, licence."""
    from multiid_bench.weights import get_store, hf_hub_cache
    from multiid_bench.weights.messages import human_size

    store = get_store(cache_dir)
    data = []
    for wid, entry in sorted(store.entries.items()):
        d = entry.to_dict()
        for f, st in zip(d["files"], store.status(wid)):
            f.update(state=st.state, location=st.location, path=str(st.path), local_size=st.size, pinned=st.pinned)
        data.append(d)
    if as_json:
        click.echo(json.dumps({"cache_root": str(store.root), "hf_hub_cache": str(hf_hub_cache()), "weights": data},
                              indent=2))
        return
    colour = {"ok": "green", "unverified": "yellow", "missing": "dim", "corrupt": "red"}
    rows = []
    for d in data:
        for f in d["files"]:
            where = "missing" if f["state"] == "missing" else f["location"]
            state = f"[{colour[f['state']]}]{f['state']}[/]" + ("" if f["pinned"] else " [yellow](unpinned)[/]")
            rows.append([d["id"], f["name"], where, human_size(f["local_size"] or f["size"]), state])
    _table(f"weights (mbench cache {store.root}; HF cache {hf_hub_cache()})",
           ["id", "file", "location", "size", "state"], rows)


@weights.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every id in the manifests.")
@click.option("--profile", type=click.Choice(["paper", "offline"]), default=None,
              help="Every weight file that face profile needs (e.g. --profile paper before an offline run).")
@click.option("--force/--no-force", default=False, show_default=True, help="Delete cached copies and fetch again.")
@_CACHE
def download(ids: tuple[str, ...], all_: bool, profile: str | None, force: bool, cache_dir: str | None) -> None:
    """Download IDS: Hub files into the Hugging Face cache, others into mbench's cache; all sha256-checked.

    The total size is printed before anything is fetched.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from multiid_bench.weights import get_store, missing_error, missing_of

    store = get_store(cache_dir)
    targets = sorted(store.entries) if all_ else list(ids)
    if profile is not None:
        from multiid_bench.faces import get_profile

        targets = list(dict.fromkeys([*targets, *get_profile(profile).weight_ids()]))
    if not targets:
        raise click.UsageError("name at least one weight id (see `mbench weights list`), --profile or --all.")
    for wid in targets:
        store.entry(wid)  # unknown ids fail before any download starts
    missing = store.preflight(targets)
    click.echo(_plan_line(store, targets, missing))
    if store.offline and missing:
        raise missing_error(missing, offline=True, profile=profile if not ids and not all_ else None,
                            cache_dir=str(store.root) if cache_dir else None)
    failures = []
    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(wid: str, name: str, done: int, total: int | None) -> None:
            key = f"{wid}/{name}"
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=total)
            bar.update(tasks[key], completed=done, total=total)

        for wid in targets:
            try:
                paths = store.download(wid, force=force, progress=progress)
                for p in paths:
                    click.echo(f"ok  {wid}: {p}")
            except MissingWeightsError as e:
                failures.extend(missing_of(e) or [e])
    if failures:
        if all(not isinstance(f, Exception) for f in failures):
            raise missing_error(failures, header="could not fetch", profile=profile if not ids and not all_ else None,
                                cache_dir=str(store.root) if cache_dir else None)
        raise MissingWeightsError("\n".join(str(f) if isinstance(f, Exception) else f.line() for f in failures))


def _plan_line(store: Any, targets: list[str], missing: list[Any]) -> str:
    """``N files, X to download (size of K unknown)``: said before any download starts (sizes from the
    manifest, else asked from the Hub / a HEAD request when online)."""
    from multiid_bench.weights.fetch import remote_size
    from multiid_bench.weights.messages import human_size

    files = [(wid, f) for wid in targets for f in store.entry(wid).files]
    sizes = [remote_size(store, store.entry(m.weight_id), store.entry(m.weight_id).file(m.name)) for m in missing]
    known = [n for n in sizes if n > 0]
    unknown = len(missing) - len(known)
    size = human_size(sum(known)) if known else "0 B"
    tail = f" + {unknown} file(s) of unknown size (`mbench weights pin` records sizes)" if unknown else ""
    return (f"{len(files)} file(s) in {len(targets)} weight id(s); {len(missing)} to download: {size}{tail}; "
            f"{len(files) - len(missing)} already present")


@weights.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every id in the manifests (missing files are listed, not errors).")
@_JSON
@_CACHE
def verify(ids: tuple[str, ...], all_: bool, as_json: bool, cache_dir: str | None) -> None:
    """Re-hash local files of IDS against the manifest; exit 1 if any is corrupt, 3 if a named id is missing."""
    from multiid_bench.weights import get_store

    store = get_store(cache_dir)
    targets = sorted(store.entries) if all_ or not ids else list(ids)
    states = [s for wid in targets for s in store.status(wid, full_hash=True)]
    if as_json:
        click.echo(json.dumps([{"id": s.weight_id, "name": s.name, "state": s.state, "path": str(s.path),
                                "sha256": s.sha256, "detail": s.detail, "location": s.location,
                                "pinned": s.pinned} for s in states], indent=2))
    else:
        colour = {"ok": "green", "unverified": "yellow", "missing": "dim", "corrupt": "red"}
        _table("weights verify", ["id", "file", "state", "location", "path"],
               [[s.weight_id, s.name, f"[{colour[s.state]}]{s.state}[/]", s.location, str(s.path)] for s in states])
    corrupt = [s for s in states if s.state == "corrupt"]
    if corrupt:
        raise CheckFailedError("corrupt weight files (delete and re-download with `mbench weights download "
                               "--force ID`):\n" + "\n".join(f"  {s.path}: {s.detail}" for s in corrupt))
    if ids:
        missing = store.preflight(targets)
        if missing:
            from multiid_bench.weights import missing_error

            raise missing_error(missing, cache_dir=str(store.root) if cache_dir else None)


@weights.command()
@click.argument("weight_id")
@click.argument("filename", required=False)
@click.option("--check/--no-check", default=False, show_default=True, help="Exit 3 when the file is not there.")
@_CACHE
def path(weight_id: str, filename: str | None, check: bool, cache_dir: str | None) -> None:
    """Print where WEIGHT_ID (its FILENAME when it has several) lives or will live.

    Hub files: their place in the Hugging Face cache (``snapshots/<commit>/<file>``); others: mbench's cache.
    """
    from multiid_bench.weights import get_store

    store = get_store(cache_dir)
    entry = store.entry(weight_id)
    names = [filename] if filename else [f.name for f in entry.files]
    for name in names:
        p = store.target_path(weight_id, name)
        click.echo(str(p))
        if check and store.local(weight_id, name) is None:
            from multiid_bench.weights import missing_error

            raise missing_error([m for m in store.preflight([weight_id]) if m.name == name],
                                cache_dir=str(store.root) if cache_dir else None)


@weights.command()
@click.argument("ids", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--manifest-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Manifest folder to edit (default: the package's manifests/).")
def pin(ids: tuple[str, ...], dry_run: bool, manifest_dir: Path | None) -> None:
    """Maintainers (network): pin Hub files of IDS (default: all) to commits, with the Hub's size and LFS sha256.

    Edits the manifests in place (layout and comments kept); commit the result. A manifest hash that
    disagrees with the Hub is reported (exit 1), never overwritten.
    """
    from multiid_bench.weights.manifest import MANIFEST_DIR
    from multiid_bench.weights.pin import pin_manifests

    changes = pin_manifests(manifest_dir=manifest_dir or MANIFEST_DIR, ids=list(ids) or None, write=not dry_run)
    rows = [[c.weight_id, c.name, f"{c.revision[0][:12]} -> {c.revision[1][:12]}", f"{c.size[0]} -> {c.size[1]}",
             "conflict: " + c.conflict if c.conflict else ("filled" if c.sha256[0] != c.sha256[1] else "kept")]
            for c in changes]
    _table("weights pin" + (" (dry run)" if dry_run else ""), ["id", "file", "revision", "size", "sha256"], rows)
    conflicts = [c for c in changes if c.conflict]
    if conflicts:
        raise CheckFailedError("manifest hashes disagree with the Hub:\n" + "\n".join(
            f"  {c.weight_id}/{c.name}: {c.conflict}" for c in conflicts))


_PACKAGES = ["torch", "torchvision", "numpy", "onnxruntime", "onnx", "opencv-python", "insightface", "facexlib",
             "facenet-pytorch", "dlib-bin", "face_recognition_models", "open_clip_torch", "transformers", "diffusers",
             "huggingface_hub", "safetensors", "pillow"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", type=click.Choice(["paper", "offline"]), default="paper", show_default=True,
              help="The face profile to judge (evaluate's default is paper).")
@_JSON
@_CACHE
def doctor(profile: str, as_json: bool, cache_dir: str | None) -> None:
    """Check dependencies, devices, cache write access and the weights of each face profile.

    Exit 0 when PROFILE can run now; 1 when it cannot (what is missing is printed, with the fixes).
    """
    from multiid_bench.weights.doctor import run_checks

    report = run_checks(cache_dir, _PACKAGES, profile)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ready"]:
        raise click.exceptions.Exit(1)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    _table("packages", ["package", "version"], [[k, v or "[red]not installed[/]"] for k, v in report["packages"].items()])
    dev = report["devices"]
    console.print(f"torch devices: {dev['torch']}; onnxruntime providers: {', '.join(dev['onnxruntime'])}")
    if report.get("runs_on"):
        _table("where each model runs (best local device)", ["model / detector", "runtime and device"],
               [[k, v] for k, v in report["runs_on"].items()])
    c = report["cache"]
    console.print(f"cache root: {c['root']} ({'[green]writable[/]' if c['writable'] else '[red]NOT writable[/]'}); "
                  f"offline mode: {report['offline']}")
    console.print(f"Hugging Face cache (Hub weights): {c['hf_hub_cache']}")
    for name, p in report["profiles"].items():
        state = "[green]ready[/]" if p["ready"] else "[red]not ready[/]"
        console.print(f"profile {name}: {state}" + ("  <- checked (--profile)" if name == report["profile"] else ""))
        for line in p["problems"]:
            if "/" not in line.split(":")[0]:  # package problems; weights come in the message below
                console.print(f"  {line}")
        for line in p.get("corrupt_weights", []):  # present but not the published bytes (checksum checked)
            console.print(f"  {line}", style="red", markup=False)
    chosen = report["profiles"][report["profile"]]
    if chosen["message"]:
        click.echo(chosen["message"])
