"""Running a :func:`~multiid_bench.adapters.environments.plan`: the side of ``mbench setup-env`` that acts.

Commands run with their output streamed to the terminal; a failing one raises :class:`EnvBuildError` (exit
3: the environment is missing) naming the step, the command and the fix. Internal actions: copying the
upstream code from a local folder, git repository or archive (air-gapped machines), downloading the
GitHub archive when git is absent, writing the lock actually used (with ``--override`` lines), and
recording the environment once its import check passed.
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from multiid_bench.adapters.environments import (
    EnvSpec,
    Step,
    lock_sha256,
    override_lines,
    read_lock,
    write_record,
)
from multiid_bench.errors import EXIT_MISSING, ConfigError, MBenchError

__all__ = ["EnvBuildError", "run_plan"]

Runner = Callable[..., "subprocess.CompletedProcess[Any]"]


class EnvBuildError(MBenchError):
    """A step of ``mbench setup-env`` failed; the environment is not usable (exit 3)."""

    exit_code = EXIT_MISSING


def run_plan(spec: EnvSpec, steps: Sequence[Step], *, overrides: Sequence[str] = (), runner: Runner | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``steps`` in order; return the record written to the config (or raise :class:`EnvBuildError`)."""
    run = runner or subprocess.run
    record: dict[str, Any] = {}
    for i, step in enumerate(steps, 1):
        echo(f"[{i}/{len(steps)}] {step.what}")
        if step.argv:
            if step.argv[:2] == ("git", "clone") and Path(step.argv[-1]).exists():
                shutil.rmtree(step.argv[-1])  # a rerun: clone afresh rather than trust a half-made checkout
            env = {**os.environ, **step.env} if step.env else None
            try:
                done = run(list(step.argv), cwd=step.cwd, env=env, check=False)
            except OSError as e:
                raise EnvBuildError(f"setup-env {spec.name}: step '{step.what}' could not start {step.argv[0]!r}: {e}. "
                                    "Install it or pass --python / put uv or git on PATH.") from e
            if done.returncode != 0:
                hint = ("the environment lacks a package or the checkout is not at the pinned commit"
                        if "import check" in step.what else "see the output above")
                raise EnvBuildError(f"setup-env {spec.name}: step '{step.what}' failed with exit code "
                                    f"{done.returncode} ({hint}). Command: {step.render()}")
            continue
        if step.action == "copy-source":
            _copy_source(str(step.args["source"]), Path(step.args["dest"]), str(step.args["commit"]), run)
        elif step.action == "download-archive":
            _download_archive(str(step.args["url"]), Path(step.args["dest"]))
        elif step.action == "write-lock":
            lines = override_lines(read_lock(spec), list(step.args.get("overrides") or ()))
            dest = Path(step.args["dest"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif step.action == "record":
            record = {
                "adapter": spec.name, "python": step.args["python"], "repo": step.args["repo"],
                "upstream": spec.repo, "commit": spec.commit, "lock": spec.lock, "lock_sha256": lock_sha256(spec),
                "overrides": list(overrides), "import_check": "ok",
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            path = write_record(list(step.args["names"]), record)
            echo(f"recorded {', '.join(step.args['names'])} in {path}")
        else:  # pragma: no cover - plan() only makes the actions above
            raise ConfigError(f"unknown setup-env action {step.action!r}")
    return record


def _copy_source(source: str, dest: Path, commit: str, run: Runner) -> None:
    """A local checkout, git repository (bare or not) or archive -> ``dest`` at ``commit`` where knowable."""
    src = Path(source).expanduser()
    if not src.exists():
        raise EnvBuildError(f"--source {source!r} does not exist; pass a checkout, a git repository or a "
                            ".tar.gz/.zip archive of the upstream code")
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        _extract(src, dest)
        return
    is_git = (src / ".git").exists() or ((src / "HEAD").is_file() and (src / "objects").is_dir())
    if is_git:
        # An archive of the pinned commit: works for bare mirrors and leaves no .git behind.
        with tempfile.TemporaryDirectory() as tmp:
            tar = Path(tmp) / "src.tar"
            done = run(["git", f"--git-dir={src / '.git' if (src / '.git').exists() else src}", "archive",
                        "--format=tar", "-o", str(tar), commit], check=False)
            if done.returncode != 0:
                raise EnvBuildError(f"git archive of {commit} from {src} failed (is the commit there?); "
                                    "pass an exported checkout instead")
            _extract(tar, dest)
        return
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a tar(.gz) or zip; a single top-level folder (GitHub archives) is stripped."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        out = Path(tmp) / "x"
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(out)
        else:
            with tarfile.open(archive) as t:
                try:
                    t.extractall(out, filter="data")
                except TypeError:  # Python < 3.10.12 has no filter argument
                    t.extractall(out)  # noqa: S202 - upstream archive the user chose
        entries = list(out.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else out
        shutil.move(str(root), str(dest))


def _download_archive(url: str, dest: Path) -> None:
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".tar.gz", dir=dest.parent, delete=False) as f:
        tmp = Path(f.name)
    try:
        try:
            urllib.request.urlretrieve(url, tmp)  # noqa: S310 - a fixed https GitHub URL
        except OSError as e:
            raise EnvBuildError(f"cannot download {url}: {e}. Offline? Pass --source with a local checkout or "
                                "archive of the repository at the pinned commit.") from e
        if dest.exists():
            shutil.rmtree(dest)
        _extract(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def describe_plan(spec: EnvSpec, steps: Sequence[Step]) -> Mapping[str, Any]:
    """What ``--dry-run`` prints (and ``--json`` emits)."""
    from multiid_bench.adapters.environments import lock_path

    return {"adapter": spec.name, "repository": spec.repo, "commit": spec.commit, "python": spec.python,
            "lock": str(lock_path(spec)), "lock_sha256": lock_sha256(spec), "gpu": spec.gpu, "notes": spec.notes,
            "shares": spec.shares, "commands": [s.render() for s in steps]}
