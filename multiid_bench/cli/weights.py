"""``mbench weights list|download|verify|path`` and ``mbench doctor``.

Every model file comes from the manifests (``multiid_bench/weights/manifests/*.toml``); downloads are
streamed, sha256-checked and renamed atomically. ``doctor`` says what is installed, which devices exist,
whether the cache is writable and which weights each face profile still needs.
"""
from __future__ import annotations

import json
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
    """Every weight id, its files, local state (ok, unverified, missing, corrupt), licence and users."""
    from multiid_bench.weights import get_store

    store = get_store(cache_dir)
    data = []
    for wid, entry in sorted(store.entries.items()):
        d = entry.to_dict()
        for f, st in zip(d["files"], store.status(wid)):
            f.update(state=st.state, path=str(st.path))
        data.append(d)
    if as_json:
        click.echo(json.dumps({"cache_root": str(store.root), "weights": data}, indent=2))
        return
    rows = [[d["id"], "\n".join(f"{f['name']}: {f['state']}" for f in d["files"]), ", ".join(d["used_by"]),
             d["licence"]] for d in data]
    _table(f"weights in {store.root}", ["id", "files", "used by", "licence"], rows)


@weights.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every id in the manifests.")
@click.option("--profile", type=click.Choice(["paper", "offline"]), default=None,
              help="Every weight file that face profile needs (e.g. --profile paper before an offline run).")
@click.option("--force/--no-force", default=False, show_default=True, help="Delete cached copies and fetch again.")
@_CACHE
def download(ids: tuple[str, ...], all_: bool, profile: str | None, force: bool, cache_dir: str | None) -> None:
    """Download IDS (streamed to .partial, sha256-checked, renamed atomically)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from multiid_bench.weights import format_missing, get_store

    store = get_store(cache_dir)
    targets = sorted(store.entries) if all_ else list(ids)
    if profile is not None:
        from multiid_bench.faces import get_profile

        targets = list(dict.fromkeys([*targets, *get_profile(profile).weight_ids()]))
    if not targets:
        raise click.UsageError("name at least one weight id (see `mbench weights list`), --profile or --all.")
    for wid in targets:
        store.entry(wid)  # unknown ids fail before any download starts
    if store.offline:
        missing = store.preflight(targets)
        if missing:
            raise MissingWeightsError(format_missing(missing, header="offline (MBENCH_OFFLINE/HF_HUB_OFFLINE): cannot fetch"))
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
                failures.append(str(e))
    if failures:
        raise MissingWeightsError("\n".join(failures))


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
                                "sha256": s.sha256, "detail": s.detail} for s in states], indent=2))
    else:
        colour = {"ok": "green", "unverified": "yellow", "missing": "dim", "corrupt": "red"}
        _table("weights verify", ["id", "file", "state", "path"],
               [[s.weight_id, s.name, f"[{colour[s.state]}]{s.state}[/]", str(s.path)] for s in states])
    corrupt = [s for s in states if s.state == "corrupt"]
    if corrupt:
        raise CheckFailedError("corrupt weight files (delete and re-download with `mbench weights download "
                               "--force ID`):\n" + "\n".join(f"  {s.path}: {s.detail}" for s in corrupt))
    missing = [s for s in states if s.state == "missing"]
    if ids and missing:
        raise MissingWeightsError("missing: " + ", ".join(f"{s.weight_id}/{s.name} ({s.path})" for s in missing)
                                  + ". Fetch with `mbench weights download ID`.")


@weights.command()
@click.argument("weight_id")
@click.argument("filename", required=False)
@click.option("--check/--no-check", default=False, show_default=True, help="Exit 3 when the file is not there.")
@_CACHE
def path(weight_id: str, filename: str | None, check: bool, cache_dir: str | None) -> None:
    """Print where WEIGHT_ID (its FILENAME when it has several) lives or will live."""
    from multiid_bench.weights import get_store

    store = get_store(cache_dir)
    entry = store.entry(weight_id)
    names = [filename] if filename else [f.name for f in entry.files]
    for name in names:
        p = store.target_path(weight_id, name)
        click.echo(str(p))
        if check and not p.is_file():
            raise MissingWeightsError(f"{p} is missing. Fetch it with `{store.fetch_command(weight_id)}`.")


_PACKAGES = ["torch", "torchvision", "numpy", "onnxruntime", "onnx", "opencv-python", "insightface", "facexlib",
             "facenet-pytorch", "dlib-bin", "face_recognition_models", "open_clip_torch", "transformers", "diffusers",
             "huggingface_hub", "safetensors", "pillow"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@_JSON
@_CACHE
def doctor(as_json: bool, cache_dir: str | None) -> None:
    """Check dependencies, devices, cache write access and the weights of each face profile.

    Exit 0 when the offline profile can run; 3 when even it lacks a package or weight file.
    """
    from multiid_bench.weights.doctor import run_checks

    report = run_checks(cache_dir, _PACKAGES)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["profiles"]["offline"]["ready"]:
        raise click.exceptions.Exit(3)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    _table("packages", ["package", "version"], [[k, v or "[red]not installed[/]"] for k, v in report["packages"].items()])
    dev = report["devices"]
    console.print(f"torch devices: {dev['torch']}; onnxruntime providers: {', '.join(dev['onnxruntime'])}")
    c = report["cache"]
    console.print(f"cache root: {c['root']} ({'[green]writable[/]' if c['writable'] else '[red]NOT writable[/]'}); "
                  f"offline mode: {report['offline']}")
    for name, p in report["profiles"].items():
        state = "[green]ready[/]" if p["ready"] else "[red]not ready[/]"
        console.print(f"profile {name}: {state}")
        for line in p["problems"]:
            console.print(f"  {line}")
