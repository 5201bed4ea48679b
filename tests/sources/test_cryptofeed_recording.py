"""cryptofeed's raw-data lines: received frames with their times, sent and connect lines apart."""

import gzip
from pathlib import Path

from marketpipe.sources.cryptofeed_recording import parse_line, received_frames

DATA = Path(__file__).parents[1] / "data"


def test_the_three_line_forms() -> None:
    connect = parse_line(b"wss://ws.kraken.com <-> 1618678132.368463\n")
    sent = parse_line(b'wss://ws.kraken.com <- 1618678132.83097: {"event":"subscribe"}\n')
    got = parse_line(b'1618678132.831468: {"event":"systemStatus"}\n')
    assert connect is not None and connect.kind == "connected"
    assert (connect.recv_us, connect.url) == (1_618_678_132_368_463, "wss://ws.kraken.com")
    assert sent is not None and sent.kind == "sent" and sent.raw == b'{"event":"subscribe"}'
    assert sent.recv_us == 1_618_678_132_830_970  # a short fraction is padded, not shifted
    assert got is not None and got.kind == "received"
    assert (got.recv_us, got.raw) == (1_618_678_132_831_468, b'{"event":"systemStatus"}')


def test_a_message_containing_colons_and_spaces_is_kept_whole() -> None:
    got = parse_line(b'1618677817.1: {"time":"2021-04-17T16:43:37Z", "a": 1}')
    assert got is not None and got.raw == b'{"time":"2021-04-17T16:43:37Z", "a": 1}'


def test_lines_of_no_known_form_are_none() -> None:
    assert parse_line(b"") is None
    assert parse_line(b"garbage without form") is None
    assert parse_line(b"12x.5: {}") is None


def test_the_coinbase_recording_has_its_documented_matches() -> None:
    with gzip.open(DATA / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz") as handle:
        frames = list(received_frames(handle))
    matches = [raw for raw, _ in frames if raw.startswith(b'{"type":"match"')]
    last = [raw for raw, _ in frames if raw.startswith(b'{"type":"last_match"')]
    assert (len(matches), len(last)) == (97, 10)  # ../shared/data/README.md
    times = [us for _, us in frames]
    assert times == sorted(times)
