"""marketpipe: a real-time market data pipeline."""

__version__ = "0.1.0"
