"""Recorded files read robustly: which format a file is, and its content as blocks of whole
lines, where a file that breaks part way (a `.gz` cut short, corrupt compressed data) keeps
every whole line before the break and reports where it broke.
"""

import gzip
import io
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from marketpipe.model.errors import SourceError
from marketpipe.model.records import DeadLetter
from marketpipe.sources.cryptofeed_recording import parse_line

Format = Literal["recv", "jsonl", "csv", "cryptofeed"]
BLOCK_BYTES = 32 * 1024 * 1024
# Reads are read1() calls of at most this: a decompressor that fails loses none of the data
# it already returned (one read(n) call would lose everything it gathered before the error).
READ_BYTES = 1024 * 1024
# What a damaged file raises part way: gzip cut short (EOFError), a bad gzip header or CRC
# (BadGzipFile, an OSError), corrupt deflate data (zlib.error), a damaged zip member.
READ_ERRORS = (EOFError, OSError, zlib.error, zipfile.BadZipFile)


def detect_format(path: Path) -> Format:
    if path.suffix == ".zip" or ".csv" in path.suffixes:
        open_file(path).close()  # a damaged archive fails here, before any work
        return "csv"
    with open_file(path) as handle:
        try:
            head = handle.readline(4096).lstrip()
        except READ_ERRORS as exc:
            raise SourceError(f"{path}: cannot be read: {read_error_reason(exc)}") from None
    if not head:
        raise SourceError(f"{path}: the file is empty, there is nothing to replay")
    if head[:1] == b"{":
        return "jsonl"
    first, _, rest = head.partition(b" ")
    if first.isdigit() and rest[:1] == b"{":
        return "recv"
    if parse_line(head) is not None:  # `wss://host <-> ts` or `ts: frame`
        return "cryptofeed"
    if head[:1].isdigit() or head.lower().startswith(b"id,"):
        return "csv"
    raise SourceError(
        f"{path}: unrecognized replay format (expected <recv_ns> <json>, a cryptofeed "
        "recording, JSONL or CSV)"
    )


def first_line(path: Path) -> bytes:
    """The file's first line (at most 4 KiB): where a recording names its connection."""
    with open_file(path) as handle:
        try:
            return handle.readline(4096)
        except READ_ERRORS:
            return b""


def open_file(path: Path) -> io.BufferedIOBase:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")
    if path.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
            names = archive.namelist()
            if not names:
                raise SourceError(f"{path}: the zip archive holds no file")
            member = archive.open(names[0])  # a ZipExtFile, typed as IO[bytes]
            assert isinstance(member, io.BufferedIOBase)
            return member
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise SourceError(f"{path}: not a readable zip archive ({exc})") from None
    return path.open("rb")


def read_error_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed data ends early (the file is cut short)"
    if isinstance(exc, gzip.BadGzipFile) and str(exc).startswith("Not a gzipped file"):
        return f"not gzip data ({exc})"
    if isinstance(exc, zlib.error | gzip.BadGzipFile | zipfile.BadZipFile):
        return f"the compressed data is damaged ({exc})"  # a bad CRC, corrupt deflate data
    return str(exc) or type(exc).__name__


@dataclass(slots=True)
class FileBreak:
    """Where a file stopped being readable: the line that could not be read whole."""

    path: Path
    line: int  # 1-based
    offset: int  # its first byte, in the file's (decompressed) content
    reason: str
    partial: bytes  # what of that line was read

    def message(self) -> str:
        content = "decompressed data" if self.path.suffix in (".gz", ".zip") else "file"
        return (
            f"{self.path}: broken at line {self.line:,} (byte {self.offset:,} of the {content}): "
            f"{self.reason}. Kept the {self.line - 1:,} lines before it; the break is in "
            "dead_letters."
        )

    def dead_letter(self) -> DeadLetter:
        return DeadLetter(
            ts=time.time_ns() // 1000,
            source="replay",
            error=self.message(),
            raw=self.partial,
            context=f"{self.path}:{self.line}",
        )


class LineBlocks:
    """Blocks of whole lines of one file, each with the number of its first line. A read
    error ends the blocks and is kept in `broken`, so the lines before it are still used."""

    def __init__(self, path: Path, handle: io.BufferedIOBase, size: int = BLOCK_BYTES) -> None:
        self.path, self.handle, self.size = path, handle, size
        self.broken: FileBreak | None = None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        buffer = bytearray()
        line, offset = 1, 0  # of the first line in `buffer`
        while True:
            try:
                piece = self.handle.read1(READ_BYTES)
            except READ_ERRORS as exc:
                self.broken = FileBreak(self.path, 0, 0, read_error_reason(exc), b"")
                piece = b""
            if piece:
                buffer += piece
                if len(buffer) < self.size:
                    continue
            cut = buffer.rfind(b"\n") + 1
            if piece and not cut:  # one line longer than a block: read on
                continue
            if not piece and self.broken is None:
                cut = len(buffer)  # the end: a last line without a newline is whole
            if cut:
                with memoryview(buffer) as view:  # one copy of the block, not two
                    block = view[:cut].tobytes()
                del buffer[:cut]
                yield line, block
                line += block.count(b"\n") + (not block.endswith(b"\n"))
                offset += len(block)
            if not piece:
                break
        if self.broken is not None:
            self.broken.line, self.broken.offset = line, offset
            self.broken.partial = bytes(buffer)


def read_all(path: Path, handle: io.BufferedIOBase) -> tuple[bytes, FileBreak | None]:
    """The whole lines of a file (for formats parsed in one go), and where it broke."""
    lines = LineBlocks(path, handle)
    return b"".join(block for _, block in lines), lines.broken


# A byte that never occurs in a frame: splitting on it gives whole lines.
NO_SPLIT = "\x1f"


def numbered_lines(block: bytes, first_line: int = 1) -> pl.DataFrame:
    """The non-empty lines of a block, as a string column `line` with its number `no`.

    Polars' CSV reader splits and decodes the block in Rust, without a Python string per
    line (the Python split cost more than the regex that follows). Undecodable bytes become
    U+FFFD, as before, so such a line fails the fast path and is dead-lettered whole.
    """
    if NO_SPLIT.encode() in block:  # cannot happen in JSON frames; stay exact if it does
        text = block.decode("utf-8", errors="replace").split("\n")
        lines = pl.Series("line", [t.removesuffix("\r") for t in text], dtype=pl.Utf8)
    else:
        lines = pl.read_csv(
            block, has_header=False, separator=NO_SPLIT, quote_char=None,
            new_columns=["line"], schema={"line": pl.Utf8}, encoding="utf8-lossy",
        )["line"]  # fmt: skip
    # The reader keeps empty lines (as nulls), so a row's index is its line's offset.
    numbered = pl.DataFrame(
        {"line": lines, "no": pl.int_range(first_line, first_line + len(lines), eager=True)}
    )
    return numbered.filter(lines.is_not_null() & (lines.str.len_bytes() > 0))
