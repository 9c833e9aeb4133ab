"""
What can go wrong, in the words clients are told: one enum of error codes
and the exception that carries one.

Shared by the domain (an avatar's action refuses with a L{ChatError}), the
command parser and every front door, which turns the code into its own
form (C{ERR <code> :<text>} on the line protocol).
"""

# test-case-name: tests.test_commands

from __future__ import annotations

import enum

__all__ = ["ChatError", "ErrorCode"]


class ErrorCode(enum.Enum):
    """
    Every code an C{ERR} line can carry.  Clients switch on these, so a code
    is never renamed or reused for another meaning.
    """

    UNKNOWN_COMMAND = "unknown-command"
    BAD_SYNTAX = "bad-syntax"
    BAD_STATE = "bad-state"
    BAD_CREDENTIALS = "bad-credentials"
    NAME_TAKEN = "name-taken"
    BAD_NAME = "bad-name"
    WEAK_PASSWORD = "weak-password"
    NO_SUCH_ROOM = "no-such-room"
    NO_SUCH_USER = "no-such-user"
    ROOM_EXISTS = "room-exists"
    LINE_TOO_LONG = "line-too-long"
    BAD_ENCODING = "bad-encoding"
    RATE_LIMITED = "rate-limited"
    REGISTRATION_CLOSED = "registration-closed"
    UNAVAILABLE = "unavailable"
    FORBIDDEN = "forbidden"
    NOT_HERE = "not-here"
    BANNED = "banned"
    MUTED = "muted"
    LOCKED = "locked"
    NO_SUCH_MESSAGE = "no-such-message"


class ChatError(Exception):
    """
    An action or a line that cannot be done, and what to tell the client.

    @ivar code: What the client is told in its C{ERR} line.
    @ivar detail: The human text of that line.
    """

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
