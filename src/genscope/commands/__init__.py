"""CLI command modules. Each command module defines ``register(app: typer.Typer) -> None``;
``genscope.cli`` discovers and registers them. ``options`` declares the shared options once and
``_output`` prints (one JSON object on stdout with ``--json``; humans read stderr).

Commands import the library inside their functions: the capture, measurement, report and
optimize stacks load diffusers and transformers, which ``genscope --help`` should not."""
