"""The entry point: runs the commands and turns every expected error into one line."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence

import typer

from redraft.cli.app import Interrupted, app
from redraft.cli.codes import EXIT_BUG, EXIT_INTERRUPTED, EXIT_MODEL_FAILED, EXIT_PASSED, EXIT_USAGE
from redraft.cli.memory import app as memory_app
from redraft.cli.output import one_line
from redraft.cli.sandbox import sandbox_app
from redraft.errors import ModelError, RedraftError

# Each module registers its commands on `app` when imported, in the order of `redraft --help`.
for _module in ("commands", "code", "resume"):  # refine, demo, version; code; resume
    importlib.import_module(f"redraft.cli.{_module}")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(memory_app, name="memory")


def _error(message: str) -> None:
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; errors become one `error: ` line on stderr."""
    try:
        return _main(argv)
    except ModelError as exc:
        _error(str(exc))
        return EXIT_MODEL_FAILED
    except RedraftError as exc:  # ConfigError and any other mistake a user can fix
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        traceback.print_exc()
        _error(f"unexpected {type(exc).__name__}: this is a bug in redraft; please report it")
        return EXIT_BUG


def _main(argv: Sequence[str] | None) -> int:
    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="redraft",
            standalone_mode=False,  # so errors reach the handlers below, not click's printer
        )
    except (Interrupted, KeyboardInterrupt, typer.Abort):
        _error("interrupted")
        return EXIT_INTERRUPTED
    except RedraftError:
        raise
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        return _click_error(exc)
    return code if isinstance(code, int) else EXIT_PASSED


def _is_click_error(exc: Exception) -> bool:
    # Typer 0.29 vendors click (typer._click) while older typers raise click's own classes;
    # both have these two members.
    return hasattr(exc, "exit_code") and callable(getattr(exc, "format_message", None))


def _click_error(exc: Exception) -> int:
    """Usage errors as one `error: ` line (click's own printer takes several)."""
    code: int = getattr(exc, "exit_code", EXIT_USAGE)
    message: str = exc.format_message()  # type: ignore[attr-defined]
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `redraft`: the help was the answer
        if message.strip():
            sys.stderr.write(message + "\n")
        return code
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or "redraft"
    _error(f"{message} (see '{where} --help')" if code == EXIT_USAGE else message)
    return code
