"""
The server's line format, shared by the server (which writes it) and the
bundled client (which reads it).

Every server line is C{TAG [arg ...] [:trailing text]}.  Keeping the
formatter and the parser side by side is what keeps the two ends of the
wire honest: a test that round-trips one through the other covers both.
"""

# test-case-name: tests.test_lines

from __future__ import annotations

from dataclasses import dataclass

# Re-exported: the bundled client and the storage read them from here.
from chat.errors import ErrorCode
from chat.message import format_timestamp, parse_timestamp

__all__ = [
    "ErrorCode",
    "ServerLine",
    "format_line",
    "format_timestamp",
    "parse_line",
    "parse_timestamp",
]


@dataclass(frozen=True, slots=True)
class ServerLine:
    """
    One parsed server line.

    @ivar tag: The upper-case first word (C{MSG}, C{OK}, C{ERR}, ...).
    @ivar args: The space-separated words between the tag and the text.
    @ivar text: What followed C{" :"}, or L{None} when the line had none.
    """

    tag: str
    args: tuple[str, ...]
    text: str | None = None


def format_line(tag: str, *args: str, text: str | None = None) -> bytes:
    """
    Encode one server line, LF included.

    Callers pass arguments that cannot hold a space (names, timestamps,
    codes), so this does not check them on the hot path; the text is the
    only free-form part and the protocol never lets a CR or LF into it.

    @return: The UTF-8 bytes to write, ending with C{b"\\n"}.
    """
    line = " ".join((tag, *args)) if args else tag
    if text is not None:
        line = f"{line} :{text}"
    return (line + "\n").encode("utf-8")


def parse_line(line: bytes | str) -> ServerLine:
    """
    Decode one server line (with or without its line end).

    @raise ValueError: The line is empty or its tag is not an upper-case
        word, i.e. it did not come from a chatroom server.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.rstrip("\r\n")
    head, sep, text = line.partition(" :")
    words = head.split(" ")
    tag = words[0]
    if not tag or not tag.isalpha() or not tag.isupper():
        raise ValueError(f"not a server line: {line!r}")
    return ServerLine(tag, tuple(w for w in words[1:] if w), text if sep else None)
