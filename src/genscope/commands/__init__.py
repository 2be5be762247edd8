"""CLI command modules. Each module defines ``register(app: typer.Typer) -> None``;
``genscope.cli`` discovers and registers every module in this package."""
