"""How long-running commands stop: SIGTERM (`docker stop`, systemd) exactly like Ctrl-C.

Every long-running command (`run`, `demo`, `serve`, `ingest`, `process`, `archive`) runs
inside `stop_signals()`. The first SIGINT or SIGTERM asks the command to stop cleanly (it
commits what it has, removes its lock file and exits 0 after printing `stopped`); a second one
stops at once, as a KeyboardInterrupt.
"""

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from marketpipe.model.errors import ConfigError

if TYPE_CHECKING:
    import uvicorn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(slots=True)
class StopRequest:
    """What a command registers to hear about a stop, and whether one came."""

    received: str | None = None  # "SIGINT" or "SIGTERM" once a signal arrived
    _actions: list[Callable[[], object]] = field(default_factory=list)

    def on_stop(self, action: Callable[[], object]) -> None:
        """Call `action` at the first stop signal (at once if one came already). It runs in
        the main thread between two bytecodes: it must only set a flag or schedule work
        (`threading.Event.set`, `loop.call_soon_threadsafe`)."""
        self._actions.append(action)
        if self.received is not None:
            action()

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second signal: stop now
        self.received = signal.Signals(signum).name
        for action in self._actions:
            action()


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Route SIGINT and SIGTERM to one StopRequest for the block; restores the old handlers.

    Servers that capture signals themselves (uvicorn) keep working: they hand the signal back
    to this handler when they have shut down."""
    request = StopRequest()
    previous = {sig: signal.signal(sig, request._signalled) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_server(server: "uvicorn.Server") -> StopRequest:
    """Serve in the foreground until SIGINT or SIGTERM; the request says which came."""
    with stop_signals() as request:
        # A signal during start-up (before uvicorn captures signals) still stops it.
        request.on_stop(lambda: setattr(server, "should_exit", True))
        with suppress(KeyboardInterrupt):  # a second signal: stopped at once
            server.run()
    if not server.started and request.received is None:  # uvicorn logged why
        config = server.config
        raise ConfigError(
            f"the API could not start on {config.host}:{config.port} "
            "(is the port in use? pick another with --port)"
        )
    return request
