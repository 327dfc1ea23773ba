"""The CLI shell: fast help, lazy imports, version, documented exit codes, did-you-mean."""
from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from multiid_bench import __version__
from multiid_bench.cli.main import COMMANDS, cli, main

HEAVY = ("torch", "insightface", "open_clip", "diffusers", "transformers", "cv2", "matplotlib", "onnxruntime")


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys, json\n"
        "from multiid_bench.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"mbench --help imported heavy modules: {loaded}"
    assert "evaluate" in out.stdout and "plot-tradeoff" in out.stdout


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_suggests_and_exits_2(capsys) -> None:
    try:
        main(["evalute"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err
    assert "Did you mean: evaluate" in err


def test_every_command_module_resolves() -> None:
    """Every entry of the lazy table points at a real click command (no dangling names)."""
    import importlib

    import click

    for name, (target, _help) in COMMANDS.items():
        module_name, attr = target.split(":")
        obj = getattr(importlib.import_module(module_name), attr)
        assert isinstance(obj, click.Command), f"{name} -> {target} is not a click command"


def test_exit_code_from_command_propagates() -> None:
    """A command that ends with click.exceptions.Exit(1) makes main() exit 1 (compare relies on it)."""
    import click

    from multiid_bench.cli._errors import run_with_error_mapping

    @click.command()
    def failing() -> None:
        raise click.exceptions.Exit(4)

    grp = click.Group(commands={"failing": failing})
    assert run_with_error_mapping(grp, ["failing"], debug=False) == 4


def test_library_error_maps_to_its_exit_code(capsys) -> None:
    import click

    from multiid_bench.cli._errors import run_with_error_mapping
    from multiid_bench.errors import MissingWeightsError

    @click.command()
    def missing() -> None:
        raise MissingWeightsError("weights 'x' missing at /tmp/x; run: mbench weights download x")

    grp = click.Group(commands={"missing": missing})
    assert run_with_error_mapping(grp, ["missing"], debug=False) == 3
    assert "mbench weights download x" in capsys.readouterr().err
