"""Recordings in cryptofeed's raw-data format: what a venue sent us, with receive times.

cryptofeed's collector writes one line per event:
- `wss://host <-> 1618677816.84` a connection opened;
- `wss://host <- 1618677817.02: {...}` a message we sent (a subscribe);
- `1618677817.06: <raw message>` a message received, with its receive time in seconds.

Only received messages are market data; the others are kept as what they are, so a reader
can show which connection a frame came on.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class RecordedLine:
    kind: Literal["received", "sent", "connected"]
    recv_us: int  # the line's time, µs since the epoch
    raw: bytes  # the message (empty for a connect)
    url: str = ""  # the connection, on sent and connect lines


def _seconds_to_us(text: bytes) -> int:
    whole, _, frac = text.strip().partition(b".")
    return int(whole) * 1_000_000 + int((frac + b"000000")[:6] or b"0")


def parse_line(line: bytes) -> RecordedLine | None:
    """One line of a recording; None for a line that is none of the three forms."""
    line = line.rstrip(b"\r\n")
    head, sep, rest = line.partition(b": ")
    try:
        if sep and b" " not in head:
            return RecordedLine("received", _seconds_to_us(head), rest)
        url, _, tail = line.partition(b" ")
        if tail.startswith(b"<-> "):
            return RecordedLine("connected", _seconds_to_us(tail[4:]), b"", url.decode())
        if tail.startswith(b"<- "):
            stamp, _, message = tail[3:].partition(b": ")
            return RecordedLine("sent", _seconds_to_us(stamp), message, url.decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def received_frames(lines: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """The received messages of a recording, as `(raw, recv_us)` in file order."""
    for line in lines:
        parsed = parse_line(line)
        if parsed is not None and parsed.kind == "received":
            yield parsed.raw, parsed.recv_us
