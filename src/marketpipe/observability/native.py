"""Whether the compiled hot path (the Rust extension `marketpipe_native`, built from native/)
is active, and why not.

Every stage that has a native path asks `extension()`; `status()` is what health reports.
When the extension is missing, fails to load or is switched off with `MARKETPIPE_NATIVE=0`,
marketpipe runs on its Python path, and says so once in its log.
"""

import importlib
import logging
import os
import threading
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)

ENV = "MARKETPIPE_NATIVE"
MODULE = "marketpipe_native"
_OFF = frozenset({"0", "false", "no", "off"})
# What this version of marketpipe calls; an older build of the extension lacks some.
_REQUIRED = ("decode_binance_block", "partial_candles", "rollup_partials", "fold_candles")


@dataclass(frozen=True, slots=True)
class NativeStatus:
    active: bool
    reason: str  # why it is active or not, for a person reading health or the log
    version: str | None = None


_lock = threading.Lock()
_loaded: tuple[ModuleType | None, NativeStatus] | None = None


def _load() -> tuple[ModuleType | None, NativeStatus]:
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in _OFF:
        return None, NativeStatus(False, f"switched off by {ENV}={os.environ[ENV]}")
    try:
        module = importlib.import_module(MODULE)
    except ImportError as exc:
        return None, NativeStatus(
            False, f"the extension {MODULE} cannot be loaded ({exc}); `make install` builds it"
        )
    missing = [name for name in _REQUIRED if not hasattr(module, name)]
    version = str(getattr(module, "__version__", "unknown"))
    if missing:
        return None, NativeStatus(
            False,
            f"the installed {MODULE} {version} lacks {', '.join(missing)}; "
            "`make install` rebuilds it",
            version,
        )
    return module, NativeStatus(True, f"{MODULE} {version} loaded", version)


def _state() -> tuple[ModuleType | None, NativeStatus]:
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load()
            module, state = _loaded
            if module is None:
                log.warning("native path inactive, running on the Python path: %s", state.reason)
            else:
                log.debug("native path active: %s", state.reason)  # health says so too
        return _loaded


def extension() -> ModuleType | None:
    """The loaded extension, or None when marketpipe runs on its Python path."""
    return _state()[0]


def status() -> NativeStatus:
    """Whether the native path is active, and why (or why not)."""
    return _state()[1]


def reset() -> None:
    """Forget what was loaded, so the next call reads the environment again (tests)."""
    global _loaded
    with _lock:
        _loaded = None
