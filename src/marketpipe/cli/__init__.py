"""The `marketpipe` command (typer): `marketpipe.cli:main`."""

from marketpipe.cli.app import app, main

__all__ = ["app", "main"]
