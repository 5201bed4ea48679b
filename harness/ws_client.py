"""A test client's reads of a WebSocket: the next JSON message, or the proof that none came."""

import asyncio
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection

NEXT_TIMEOUT_S = 5.0  # a message that is due arrives well within this, even on a loaded CI


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    """The next message, decoded; a JSON object by the protocols we serve."""
    message = msgspec.json.decode(await asyncio.wait_for(ws.recv(), NEXT_TIMEOUT_S))
    assert isinstance(message, dict), message
    return message


async def no_message(ws: ClientConnection, seconds: float) -> None:
    """Fail if anything arrives within `seconds`."""
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"nothing more was due, got {extra!r}")
