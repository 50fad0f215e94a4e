"""Framing of the stdio protocol: strict newline-delimited JSON over binary pipes.

Standard library only. One message is one line: UTF-8 JSON (the writer emits pure ASCII) terminated by
``\\n``. A line longer than ``protocol.MAX_MESSAGE_BYTES`` is never buffered whole: the reader returns an
``Oversized`` marker after discarding the rest of that line, so the peer gets an error and the stream stays
in sync. Blank lines are ignored. EOF ends the stream; a partial last line without a newline is still
delivered.

Content-Length headers (pygls) were considered; newline framing was chosen because JSON with
``ensure_ascii`` never contains a raw newline, scripts can speak it with ``print(json.dumps(...))``, and
``readline(limit)`` gives the size bound for free.
"""

from __future__ import annotations

import threading
from typing import IO

from .protocol import MAX_MESSAGE_BYTES, Message, encode_message

_CHUNK = 64 * 1024


class Oversized:
    """Marker returned by ``LineReader.read_line`` and ``LineBuffer`` for a line over the limit (already
    discarded)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"OVERSIZED(>={self.size} bytes)"




class LineReader:
    """Reads bounded lines from a binary stream.

    Args:
        stream: a binary file object (``sys.stdin.buffer``, ``Popen.stdout``).
        max_bytes: the longest accepted line, newline excluded.
    """

    def __init__(self, stream: IO[bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._stream = stream
        self._max = max_bytes

    def read_line(self) -> bytes | Oversized | None:
        """The next non-blank line without its line ending; an ``Oversized`` marker; or None at EOF."""
        while True:
            line = self._stream.readline(self._max + 2)
            if not line:
                return None
            ended = line.endswith(b"\n")
            content_size = len(line) - 1 if ended else len(line)
            if content_size > self._max:
                return Oversized(content_size if ended else content_size + self._discard_rest())
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                return stripped

    def _discard_rest(self) -> int:
        """Skip to the end of the current line; returns the number of bytes skipped, newline excluded."""
        skipped = 0
        while True:
            chunk = self._stream.readline(_CHUNK)
            if not chunk:
                return skipped
            if chunk.endswith(b"\n"):
                return skipped + len(chunk) - 1
            skipped += len(chunk)


class LineBuffer:
    """The same framing as ``LineReader`` for bytes that arrive in pieces (pipes read without blocking).

    ``feed`` takes whatever was read and returns the lines it completed; ``finish`` returns a last line
    left without a newline at EOF. A line over the limit is dropped as it arrives (never buffered whole) and
    reported as ``Oversized`` once its newline comes.

    Args:
        max_bytes: the longest accepted line, newline excluded.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self._skipped: int | None = None  # bytes of an oversized line dropped so far

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        """The non-blank lines (without line endings) and ``Oversized`` markers that ``data`` completes."""
        pieces = data.split(b"\n")
        lines: list[bytes | Oversized] = []
        for index, piece in enumerate(pieces):
            self._take(piece)
            if index < len(pieces) - 1:  # this piece ended with a newline
                self._end_line(lines)
        return lines

    def finish(self) -> list[bytes | Oversized]:
        """At EOF: the partial last line, if there is one."""
        lines: list[bytes | Oversized] = []
        if self._buffer or self._skipped is not None:
            self._end_line(lines)
        return lines

    def _take(self, piece: bytes) -> None:
        if self._skipped is not None:
            self._skipped += len(piece)
            return
        self._buffer += piece
        if len(self._buffer) > self._max:
            self._skipped = len(self._buffer)
            self._buffer.clear()

    def _end_line(self, lines: list[bytes | Oversized]) -> None:
        if self._skipped is not None:
            lines.append(Oversized(self._skipped))
            self._skipped = None
            return
        line = bytes(self._buffer).rstrip(b"\r\n")
        self._buffer.clear()
        if line.strip():
            lines.append(line)


class MessageWriter:
    """Writes whole messages to a binary stream; safe to call from several threads.

    Args:
        stream: a binary file object opened for writing (the server's protocol stdout, ``Popen.stdin``).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, message: Message) -> None:
        """Encode and write ``message`` followed by a flush.

        Raises:
            OSError: the pipe is closed (``BrokenPipeError``) or the write failed.
            ValueError: the message cannot be encoded (see ``protocol.encode_message``).
        """
        self.write_bytes(encode_message(message))

    def write_bytes(self, data: bytes) -> None:
        """Write one already-encoded message (``protocol.encode_message``) and flush.

        Raises:
            OSError: the pipe is closed or the write failed.
            ValueError: the stream was closed by ``close()``.
        """
        with self._lock:
            self._stream.write(data)
            self._stream.flush()

    def close(self) -> None:
        """Close the stream, ignoring a peer that is already gone."""
        with self._lock:
            try:
                self._stream.close()
            except OSError:
                pass
