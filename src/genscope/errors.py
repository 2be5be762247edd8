"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(ValueError):
    """Bad input from the user (unknown name, impossible shape, ...). Message names the choices."""


def choices_error(kind: str, value: object, choices: "list[str] | tuple[str, ...]") -> UserError:
    """An error for a value outside a closed set, naming every valid choice."""
    return UserError(f"unknown {kind} {value!r}; choose one of: {', '.join(sorted(choices))}")
