"""The ``genscope`` command: a thin typer layer over the Python API.

Command modules live in ``genscope.commands``; each command module exposes ``register(app)``.
Errors the user can fix (:class:`genscope.errors.UserError`) print one line on stderr and exit
with code 2.
"""

import importlib
import pkgutil
import sys

import typer

from genscope import commands
from genscope.errors import UserError

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


def main() -> None:
    try:
        app()
    except UserError as err:
        print(f"genscope: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
