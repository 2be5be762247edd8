"""User-facing errors: the CLI prints them as one line and exits with code 2.

With ``--json`` the CLI also prints ``{"error": {"type", "message", "choices"?}}`` on stdout;
``choices`` comes from :func:`choices_error`.
"""

from __future__ import annotations

#: longest quoted value in an error message (a hostile value must not become a huge line)
CLIP = 80


def clip(text: object, limit: int = CLIP) -> str:
    """``text`` as one line of at most ``limit`` characters (``…`` marks a cut)."""
    s = " ".join(str(text).split()) if "\n" in str(text) else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class UserError(ValueError):
    """Bad input from the user (unknown name, impossible shape, ...). Message names the choices."""

    def __init__(self, message: str, choices: list[str] | None = None) -> None:
        super().__init__(message)
        self.choices = choices


def choices_error(kind: str, value: object, choices: list[str] | tuple[str, ...]) -> UserError:
    """An error for a value outside a closed set, naming every valid choice."""
    names = sorted(str(c) for c in choices)
    listed = ", ".join(names)
    return UserError(f"unknown {kind} {clip(repr(value))}; choose one of: {listed}", names)
