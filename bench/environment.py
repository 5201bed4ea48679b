"""What a result was measured on: machine, interpreter, package versions, peak memory."""

import os
import platform
import resource
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("marketpipe", "polars", "duckdb", "pyarrow", "pyspark", "matplotlib")


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return round(peak * scale, 1)
