"""``ironwave`` command line entry point.

Subcommands register themselves on :data:`app`. User mistakes (any
:class:`~ironwave.errors.IronwaveError`, bad files, bad options) print one line
``error: ...`` and exit with status 2; no traceback.
"""
from __future__ import annotations

import sys

import typer
from rich.console import Console

from ironwave.errors import IronwaveError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ironwave: GPU-native real-time audio for Python.")
console = Console()
err_console = Console(stderr=True)


class UserError(IronwaveError):
    """A mistake in what the user asked the CLI for."""


def _register() -> None:
    from ironwave.cli import commands  # noqa: F401  (registers info, calibrate, demo, bench)
    for mod in ("ironwave.cli.engine_commands", "ironwave.cli.models_commands", "ironwave.cli.spectral_commands"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:  # a layer that has not landed yet
            if e.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    _register()
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int):
            return rc
    except (IronwaveError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    except ValueError as e:  # e.g. soundfile/numpy complaints on user data
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # click usage errors (typer may vendor click, so match by class name)
        names = {c.__name__ for c in type(e).__mro__}
        if "ClickException" in names or "UsageError" in names:
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            return 2
        if "Abort" in names:
            return 1
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
