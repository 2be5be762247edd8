"""The two rich consoles every part of genscope prints through.

Progress, logs and tables for humans go to stderr, so that with ``--json`` stdout carries
exactly one JSON object.
"""

from rich.console import Console

err_console = Console(stderr=True)
out_console = Console()
