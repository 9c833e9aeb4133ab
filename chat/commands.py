"""
Client lines to commands: pure parsing, no I/O and no state.

The protocol decides what a command may do in which state; this module only
says what a line I{is}.  Keeping the two apart is what lets the state table
in L{chat.protocol} read as a table.
"""

# test-case-name: tests.test_commands

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from chat.lines import ErrorCode

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "NAME_RE",
    "Command",
    "CommandError",
    "Verb",
    "looks_like_http",
    "parse_args",
    "parse_bare",
    "split_command",
    "valid_name",
]

#: The longest line a client may send, not counting CR/LF.
MAX_LINE_BYTES = 2048
MIN_PASSWORD = 8
MAX_PASSWORD = 128
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


class Verb(Enum):
    """
    Everything a client can ask for.  C{SAY} is a chat message and
    C{DIALOG} starts the guided login dialog; neither has a C{/verb}.
    """

    REGISTER = "register"
    LOGIN = "login"
    ROOMS = "rooms"
    CREATE = "create"
    JOIN = "join"
    LEAVE = "leave"
    WHO = "who"
    HELP = "help"
    QUIT = "quit"
    SAY = "say"
    DIALOG = "dialog"


#: Verbs a client can type after C{/}.
SLASH_VERBS = {v.value: v for v in Verb if v not in (Verb.SAY, Verb.DIALOG)}

#: How many space-separated arguments each verb takes.  C{REGISTER} and
#: C{LOGIN} take a name and then the rest of the line as the password.
_ARITY = {
    Verb.REGISTER: 2,
    Verb.LOGIN: 2,
    Verb.ROOMS: 0,
    Verb.CREATE: 1,
    Verb.JOIN: 1,
    Verb.LEAVE: 0,
    Verb.WHO: 0,
    Verb.HELP: 0,
    Verb.QUIT: 0,
}


@dataclass(frozen=True, slots=True)
class Command:
    verb: Verb
    args: tuple[str, ...] = ()


class CommandError(Exception):
    """
    A line that cannot be a command.

    @ivar code: What the client is told in its C{ERR} line.
    @ivar detail: The human text of that line.
    """

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def valid_name(name: str) -> bool:
    """
    Whether C{name} may name a user or a room.  The same rule for both keeps
    names safe as file names and as protocol arguments.
    """
    return NAME_RE.match(name) is not None


#: An HTTP request line (C{POST / HTTP/1.1}, HTTP/2's C{PRI * HTTP/2.0}).
_HTTP_REQUEST = re.compile(r"[A-Z]+ \S+ HTTP/\d(?:\.\d)?\Z")
#: The headers a browser or an HTTP tool sends first, in any case.
_HTTP_HEADER = re.compile(
    r"(?:host|user-agent|content-type|content-length|origin|accept|accept-[a-z]+"
    r"|connection|referer|cookie|upgrade|transfer-encoding|sec-[a-z-]+):",
    re.IGNORECASE,
)


def looks_like_http(line: str) -> bool:
    """
    Whether a line is an HTTP request line or one of the headers that
    follow it.  A web page can make a visitor's browser send a request to
    a chat port (a C{text/plain} POST needs no preflight), and its body
    would otherwise run as chat lines.
    """
    return _HTTP_REQUEST.match(line) is not None or _HTTP_HEADER.match(line) is not None


def split_command(line: str) -> tuple[Verb, str]:
    """
    Split a C{/verb rest} line into its verb and the unparsed rest.

    C{//text} is a chat message whose text starts with C{/}.

    @raise CommandError: C{unknown-command} for a verb the server does not
        know.
    """
    if line.startswith("//"):
        return Verb.SAY, line[1:]
    word, _, rest = line[1:].partition(" ")
    verb = SLASH_VERBS.get(word.lower())
    if verb is None:
        shown = word if len(word) <= 32 else word[:32] + "..."
        raise CommandError(ErrorCode.UNKNOWN_COMMAND, f"unknown command /{shown}; try /help")
    return verb, rest


def parse_args(verb: Verb, rest: str) -> tuple[str, ...]:
    """
    Check and split a known verb's arguments.

    @raise CommandError: C{bad-syntax} for a wrong number of arguments,
        C{bad-name} for a name outside C{[A-Za-z0-9_-]{1,32}}.
    """
    if verb is Verb.SAY:
        return (rest,)
    arity = _ARITY[verb]
    if verb in (Verb.REGISTER, Verb.LOGIN):
        # The password is everything after the one space that ends the name:
        # it may hold spaces, and its leading and trailing spaces count.
        name, sep, password = rest.partition(" ")
        if not name or not sep or not password:
            raise CommandError(ErrorCode.BAD_SYNTAX, f"usage: /{verb.value} <name> <password>")
        args: tuple[str, ...] = (name, password)
    else:
        args = tuple(rest.split())
        if len(args) != arity:
            usage = f"/{verb.value}" + (" <room>" if arity else "")
            raise CommandError(ErrorCode.BAD_SYNTAX, f"usage: {usage}")
    if arity and not valid_name(args[0]):
        raise CommandError(ErrorCode.BAD_NAME, "names are 1 to 32 of A-Z a-z 0-9 _ -")
    return args


def parse_bare(line: str, in_auth: bool, in_lobby: bool) -> Command:
    """
    Interpret a line that does not start with C{/}, outside a room.

    In AUTH the words C{login} and C{register} start the guided dialog; in
    the lobby C{create <room>} and a single room name are shorthands for
    C{/create} and C{/join}.  C{exit} means C{/quit} everywhere, and wins
    over a room of that name, as does C{create}.

    @raise CommandError: C{bad-state} for anything else, or what
        L{parse_args} raises for a shorthand's argument.
    """
    words = line.split()
    if not words:
        # Only Unicode white space (VT, NBSP, U+2028...): not blank by the
        # protocol's rule (spaces and tabs), and not a word either.
        raise CommandError(ErrorCode.BAD_STATE, "that line holds nothing but white space")
    first = words[0].lower()
    if len(words) == 1 and first == "exit":
        return Command(Verb.QUIT)
    if in_auth:
        if len(words) == 1 and first in ("login", "register"):
            return Command(Verb.DIALOG, (first,))
        raise CommandError(ErrorCode.BAD_STATE, "log in first: login, register, or /help")
    if in_lobby:
        if first == "create":
            rest = line.strip()[len("create") :]
            return Command(Verb.CREATE, parse_args(Verb.CREATE, rest))
        if len(words) == 1:
            return Command(Verb.JOIN, parse_args(Verb.JOIN, words[0]))
        raise CommandError(
            ErrorCode.BAD_STATE,
            "you are not in a room: type a room name to join it, or create <room>",
        )
    raise AssertionError("parse_bare is not for lines in a room")
