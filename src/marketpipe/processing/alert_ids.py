"""What every alert rule shares: the deterministic id, and details as a JSON object."""

import hashlib

import msgspec


def alert_id(kind: str, exchange: str, symbol: str, key: int) -> str:
    """A hash of the kind and the key (trade id, window, episode start): a replay or a
    revision never fires the same alert twice."""
    return hashlib.blake2b(f"{kind}|{exchange}|{symbol}|{key}".encode(), digest_size=16).hexdigest()


def alert_details(**fields: object) -> str:
    return msgspec.json.encode(fields).decode()
