"""The root ``exprbench`` app, the one way verbs are registered (:func:`command`, :func:`group`), and
:func:`main`, which maps errors to exit codes: 0 success, 2 bad input or usage, 1 any other failure,
130 interrupted (Ctrl-C).

Every error a user can cause is one line on stderr: :class:`~exprbench.core.errors.UserError` messages,
click/typer usage errors (an unknown option, a value out of range), and permission errors on the
paths given. A full disk (ENOSPC/EDQUOT) is an environment failure: exit code 1, but one line naming the
file (``error: PATH: no space left on device ...``) and no traceback. Every command takes ``-h``/``--help`` and ``--version``. Listing commands (``models``,
``--help``) import no torch.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Callable

import typer
from rich.console import Console

from exprbench import __version__
from exprbench.core.errors import Interrupted, TrainingDiverged, UserError
from exprbench.core.io import NO_SPACE_ERRNOS

CONTEXT = {"help_option_names": ["-h", "--help"]}
# plain click help (rich_markup_mode None): wrapped to the terminal, never cut at 80 columns, and a flag shows
# no "<bool>" metavar
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings=CONTEXT, rich_markup_mode=None,
                  help="exprbench: benchmark suite for facial-expression image generation.")
console = Console(width=None if sys.stdout.isatty() else 160)  # piped: wide enough for whole names
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu or cuda[:i]."


def command(name: str, parent: typer.Typer | None = None) -> Callable[[Callable], Callable]:
    """Register the decorated function as the verb ``name`` of ``parent`` (default: the root app).

    Every CLI module declares its verbs this way (``@command("train")``, ``@command("info", data_group)``);
    :mod:`exprbench.cli` imports the modules, which is all registration takes.
    """
    def deco(fn: Callable) -> Callable:
        (parent or app).command(name)(fn)
        return fn
    return deco


def group(name: str, help: str, default: Callable[[], None] | None = None) -> typer.Typer:
    """A verb group ``exprbench <name> ...`` of the root app (its verbs register with ``command(..., group)``).

    Args:
        name: the group's verb; help: its help line.
        default: what ``exprbench <name>`` alone does (None: print the group's help).
    """
    if default is None:
        sub = typer.Typer(no_args_is_help=True, help=help, rich_markup_mode=None)
    else:
        sub = typer.Typer(invoke_without_command=True, help=help, rich_markup_mode=None)

        @sub.callback()
        def _default(ctx: typer.Context) -> None:
            if ctx.invoked_subcommand is None:
                default()
    app.add_typer(sub, name=name)
    return sub


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"exprbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """exprbench: benchmark suite for facial-expression image generation."""


def _walk(cmd):
    yield cmd
    for sub in getattr(cmd, "commands", {}).values():
        yield from _walk(sub)


@functools.lru_cache(maxsize=None)
def cli_command():
    """The click command of :data:`app` with ``--version`` on every subcommand and group (built once)."""
    root = typer.main.get_command(app)
    version = next(p for p in root.params if p.name == "version")
    version.expose_value = False
    for cmd in _walk(root):
        if cmd is not root and all(p.name != "version" for p in cmd.params):
            cmd.params.append(version)
    return root


_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR}


def _one_line(text: str) -> str:
    return "; ".join(x.strip() for x in str(text).splitlines() if x.strip())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's capture): nothing to flush
        pass


def _os_error(e: OSError) -> int:
    """Report an OSError that ended a command; returns the exit code: 2 for a path the user gave that cannot be
    used (one line), 1 for a full disk (an environment failure, but no bug: one line) and anything else (traceback)."""
    if e.errno in _PATH_ERRNOS and e.filename is not None:  # a path the user gave: bad input
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    if e.errno in NO_SPACE_ERRNOS:
        where = f"{e.filename}: " if e.filename is not None else ""
        print(f"error: {where}no space left on device (free some space and run the command again)", file=sys.stderr)
        return 1
    import traceback

    traceback.print_exc()
    print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, map errors to exit codes (2 bad input/usage, 1 other failure (a full disk: one
    line), 130 Ctrl-C, 141 stdout closed).

    Errors a user causes print one line on stderr: usage errors of click/typer (an unknown option, a
    value out of its range) as ``error: <command>: <message> (see '<command> -h')``, a
    :class:`~exprbench.core.errors.UserError` as ``error: <message>``.
    """
    from typer._click.exceptions import NoArgsIsHelpError  # typer's vendored click (typer pinned in constraints.txt)

    args = sys.argv[1:] if argv is None else list(argv)
    cmd = cli_command()
    try:
        with cmd.make_context("exprbench", args) as ctx:
            cmd.invoke(ctx)
    except typer.Exit as e:
        return e.exit_code
    except NoArgsIsHelpError as e:  # a group without its subcommand: its help
        e.show()
        return int(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except typer.TyperException as e:  # click's ClickException / UsageError / BadParameter
        ctx_ = getattr(e, "ctx", None)
        where = f"{ctx_.command_path}: " if ctx_ is not None else ""
        hint = f" (see '{ctx_.command_path} -h')" if ctx_ is not None else ""
        print(f"error: {where}{_one_line(e.format_message())}{hint}", file=sys.stderr)
        return int(getattr(e, "exit_code", 2))
    except UserError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:  # Ctrl-C in train or evaluate: the one line says what was saved
        print(str(e), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader went away (`exprbench -h | head`): stop quietly, as `cat` does
        _silence_stdout()
        return 141  # 128 + SIGPIPE, the shell's status for a command ended by a closed pipe
    except OSError as e:
        return _os_error(e)
    except Exception as e:  # anything else is a failure, not bad input
        import traceback

        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
