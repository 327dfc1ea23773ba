"""Every ``mbench`` command line in README.md and docs/*.md that can run offline runs, and exits 0.

Command lines are those in fenced code blocks (continuation lines joined, ``&&`` chains split, comments dropped),
run in document order in one scratch folder per document, so a later line can use what an earlier one wrote
(``generate --out runs/dummy`` then ``score --images runs/dummy``). A line runs when it can here, offline with
no model weights beyond the packaged offline profile and no GPU:

* evaluate / score / generate on ``--bench demo`` (scoring with ``--profile offline``), with ``--limit 2``
  appended to stay fast;
* ls, models, weights list/path, setup-env ``--dry-run``, leaderboard / plot-tradeoff from the paper's
  numbers, ``doctor --profile offline``; compare / report / faces / leaderboard / plot-tradeoff when every
  input path they name exists (written by an earlier line).

Everything else (placeholders such as ``NAME`` or ``[--flag]``, ``--device cuda``, downloads, training, hub
benches, OmniContext judges, inputs only the user has) is skipped, and the skipped lines are listed on failure.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from multiid_bench.adapters import ADAPTERS
from multiid_bench.cli._errors import run_with_error_mapping
from multiid_bench.cli.main import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNS_A_MODEL = {"evaluate", "score", "generate"}
NEEDS_NOTHING = {"ls", "models", "report", "compare", "faces", "leaderboard", "plot-tradeoff"}
_PLACEHOLDER = re.compile(r"\[|\]|\.\.\.|\$\{|\*|<[^>]*>|\b[A-Z][A-Z_]{2,}\b")


def command_lines(path: Path) -> list[str]:
    """The ``mbench ...`` command lines of the fenced code blocks of ``path``, in order."""
    lines: list[str] = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.strip().removeprefix("$ ").strip()
                if part.startswith("mbench "):
                    lines.append(part)
    return lines


def runnable(argv: list[str], cwd: Path) -> bool:
    """Whether a command line can run here (module docstring); ``argv`` is without the leading ``mbench``."""
    text = " ".join(argv)
    if not argv or _PLACEHOLDER.search(text) or "cuda" in text or "--judge" in text:
        return False
    command, rest = argv[0], argv[1:]
    opts = dict(zip(rest, rest[1:]))
    if command in RUNS_A_MODEL:
        offline_profile = opts.get("--profile") == "offline" or command == "generate"
        return opts.get("--bench") == "demo" and offline_profile and (
            command != "score" or (cwd / opts.get("--images", "")).is_dir())
    if command == "weights":
        return bool(rest) and rest[0] in ("list", "path")
    if command == "setup-env":
        return "--dry-run" in rest
    if command == "doctor":
        return opts.get("--profile") == "offline"
    if command not in NEEDS_NOTHING:
        return False  # train, download, pin, verify ...
    positional = [a for i, a in enumerate(rest) if not a.startswith("-") and (i == 0 or not rest[i - 1].startswith("-"))]
    if command in ("ls", "models"):
        return True
    return all((cwd / p).exists() for p in positional)


@pytest.mark.parametrize("doc", [d for d in DOCS if command_lines(d)], ids=lambda p: p.name)
def test_every_offline_command_line_of_the_docs_runs(doc: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    lines = command_lines(doc)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path.parent / "mbench-home"))  # the demo is built once per session
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ran, skipped, failed = [], [], []
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        if not runnable(argv, tmp_path):
            skipped.append(line)
            continue
        if argv[0] in RUNS_A_MODEL:
            argv += ["--limit", "2"]
            if argv[0] != "generate":
                argv += ["--device", "cpu"]
        code = run_with_error_mapping(cli, argv, debug=False)
        ADAPTERS._frozen = False  # generate freezes the registry, as a real process would
        out = capsys.readouterr()
        (failed if code != 0 else ran).append(f"{line}  -> exit {code}\n{out.err[-1500:]}" if code else line)
    assert not failed, f"{doc.name}: command lines that fail:\n" + "\n".join(failed) + \
        "\n(skipped as not runnable offline: " + "; ".join(skipped) + ")"
    print(f"{doc.name}: ran {len(ran)}: {ran}; skipped {len(skipped)}: {skipped}")
    if doc.name in ("README.md", "adapters.md", "leaderboard.md", "weights.md"):
        assert ran, f"{doc.name}: no command line ran; the filter is too strict (skipped: {skipped})"


def test_the_command_line_filter() -> None:
    """What counts as runnable offline (the rules of the module docstring)."""
    here = Path(".")
    assert runnable(shlex.split("evaluate --model copy-reference --bench demo --profile offline"), here)
    assert not runnable(shlex.split("evaluate --model uno --bench WithAnyone/MultiID-Bench"), here)
    assert not runnable(shlex.split("evaluate --model uno --bench demo --profile offline --device cuda"), here)
    assert not runnable(shlex.split("generate --model NAME --bench demo"), here)
    assert runnable(shlex.split("weights list"), here) and not runnable(shlex.split("weights download x"), here)
    assert runnable(shlex.split("setup-env uno --dry-run"), here) and not runnable(shlex.split("setup-env uno"), here)
    assert not runnable(shlex.split("compare no/such/run other/run"), here)
    assert command_lines(ROOT / "README.md")[0].startswith("mbench evaluate --model copy-reference --bench demo")


#: Advice that points nowhere: a flag no command has, the pre-0.34 hub client name, a command that does not exist.
_DEAD_POINTERS = re.compile(r"--data-root|huggingface-cli|mbench ls benches")


def test_messages_and_docs_point_at_things_that_exist() -> None:
    """No message or doc line advises ``--data-root`` (no such flag), ``huggingface-cli`` (the hub client installs
    ``hf``) or ``mbench ls benches`` (no such command). Worker environments pin their own, older hub client
    (``adapters/workers``, and the docs line of such a pin), where ``huggingface-cli`` is right."""
    sources = [*(ROOT / "multiid_bench").rglob("*.py"), *(ROOT / "reference_model").rglob("*.py"),
               *(ROOT / "adapters").glob("*.py"), *(ROOT / "leaderboard").rglob("*.py"), *DOCS]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:120]}" for p in sources
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if _DEAD_POINTERS.search(line) and "huggingface-hub <" not in line]
    assert not found, "advice that points nowhere:\n" + "\n".join(found)
    import click

    ls = cli.get_command(click.Context(cli), "ls")
    assert ls is not None and "benches" not in ls.list_commands(click.Context(ls))
