"""Compatibility import: the app factory lives in `marketpipe.serving.app`."""

from marketpipe.serving.app import create_app
from marketpipe.serving.backend import Backend, embedded_backend

__all__ = ["Backend", "create_app", "embedded_backend"]
