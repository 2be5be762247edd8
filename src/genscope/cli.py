"""The ``genscope`` command: a thin typer layer over the Python API.

Command modules live in ``genscope.commands``; each command module exposes ``register(app)``.

Every failure ends the same way, whichever layer found it (:class:`genscope.errors.UserError`,
a typer/click usage error such as ``--steps abc``, an interruption): one line on stderr and exit
code 2 (130 when interrupted). With ``--json`` the same exit also prints exactly one JSON object
on stdout, ``{"error": {"type", "message", "choices"?}}``. An unexpected exception (a bug) is
one line too, with exit code 1; ``GENSCOPE_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

import typer

try:  # typer >= 0.22 bundles its own click; older typer uses click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc  # type: ignore[no-redef]

from genscope import commands
from genscope.commands._output import emit_json
from genscope.errors import UserError, clip

app = typer.Typer(
    name="genscope",
    help="Where multimodal generative-AI inference spends its time, memory and precision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    _module = importlib.import_module(f"{commands.__name__}.{_info.name}")
    if hasattr(_module, "register"):  # helpers (_output, options) register nothing
        _module.register(app)


#: longest error line (values quoted in messages are clipped shorter, see genscope.errors.clip)
MAX_ERROR_CHARS = 1000


def _fail(
    as_json: bool, kind: str, message: str, code: int, choices: list[str] | None = None
) -> None:
    """The one way genscope exits on failure: a stderr line, the JSON object, the exit code."""
    line = clip(" ".join(message.split()), MAX_ERROR_CHARS)  # one bounded line, whatever it held
    print(f"genscope: error: {line}", file=sys.stderr, flush=True)
    if as_json:
        error: dict[str, object] = {"type": kind, "message": line}
        if choices is not None:
            error["choices"] = choices
        emit_json({"error": error})
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command named by ``argv`` (default ``sys.argv[1:]``) and exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    try:
        rv = app(args=args, prog_name="genscope", standalone_mode=False)
    except click_exc.NoArgsIsHelpError:
        app(args=["--help"], prog_name="genscope")
        return
    except click_exc.UsageError as err:
        hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
        _fail(as_json, "usage", clip(err.format_message(), 300) + hint, 2)
    except click_exc.ClickException as err:
        _fail(as_json, "usage", clip(err.format_message(), 300), err.exit_code or 2)
    except UserError as err:
        _fail(as_json, "user", str(err), 2, err.choices)
    except (typer.Abort, KeyboardInterrupt):
        _fail(as_json, "interrupted", "interrupted", 130)
    except SystemExit as err:  # SIGTERM during a measured run raises SystemExit(143)
        if isinstance(err.code, int) and err.code > 128:
            _fail(as_json, "interrupted", f"interrupted by signal {err.code - 128}", err.code)
        raise
    except Exception as err:  # a bug: still one line (and one JSON object), exit 1
        if os.environ.get("GENSCOPE_DEBUG"):
            traceback.print_exc()
        _fail(
            as_json,
            "internal",
            f"internal error {type(err).__name__}: {clip(err, 200)} "
            "(GENSCOPE_DEBUG=1 shows the traceback; please report it)",
            1,
        )
    if rv == 130:  # typer turns Ctrl-C into Exit(130)
        _fail(as_json, "interrupted", "interrupted", 130)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


if __name__ == "__main__":
    main()
