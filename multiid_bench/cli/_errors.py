"""Exception -> one-line message -> exit code, decided once for every command."""
from __future__ import annotations

import sys
import traceback

import click

from multiid_bench.errors import EXIT_USAGE, MBenchError


def run_with_error_mapping(group: click.Group, argv: list[str] | None, *, debug: bool) -> int:
    """Run ``group``; library errors print their message (traceback only in debug) and set the exit code."""
    try:
        rv = group.main(args=argv, prog_name="mbench", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE if e.exit_code in (1, 2) else int(e.exit_code)
    except MBenchError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        if not debug:
            click.echo("(set MBENCH_DEBUG=1 for the full traceback)", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted; results written so far are kept and a rerun resumes.", err=True)
        return 130
    # without standalone mode click returns the code of a ``click.exceptions.Exit`` raised in a command
    return rv if isinstance(rv, int) else 0


def exit_with(code: int) -> None:
    """Exit from inside a command with a documented code (used for 1 and 4)."""
    sys.exit(code)
