"""
The commands a client can give: one table, and pure parsing.

For each verb, L{TABLE} holds its grammar, the states it is allowed in,
its help line and what a client is told when it is not allowed.  The
server's C{/help}, its state checks, the argument parser and the fuzz
test's shapes all read it, so adding a command is one entry here and one
action on the avatar (L{chat.avatar.ChatUser}).  Parsing does no I/O and
keeps no state: this module only says what a line I{is}.
"""

# test-case-name: tests.test_commands

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from enum import Enum

from chat.errors import ChatError, ErrorCode
from chat.message import parse_timestamp

__all__ = [
    "COMMANDS",
    "DEFAULT_AUDIT",
    "DEFAULT_PAGE",
    "MAX_AUDIT",
    "MAX_LINE_BYTES",
    "MAX_PAGE",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "NAME_RE",
    "TABLE",
    "Command",
    "CommandError",
    "CommandSpec",
    "State",
    "Verb",
    "help_lines",
    "looks_like_http",
    "parse_args",
    "parse_bare",
    "split_command",
    "valid_name",
    "why_not",
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
    RESUME = "resume"
    ROOMS = "rooms"
    CREATE = "create"
    JOIN = "join"
    LEAVE = "leave"
    WHO = "who"
    MSG = "msg"
    DMS = "dms"
    HISTORY = "history"
    IGNORE = "ignore"
    UNIGNORE = "unignore"
    IGNORES = "ignores"
    TOPIC = "topic"
    OP = "op"
    DEOP = "deop"
    OPS = "ops"
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    BANS = "bans"
    MUTE = "mute"
    UNMUTE = "unmute"
    DELETE = "delete"
    LOCK = "lock"
    UNLOCK = "unlock"
    WALL = "wall"
    DROP = "drop"
    AUDIT = "audit"
    TOKEN = "token"
    PASSWORD = "password"
    LOGOUT_ALL = "logout-all"
    HELP = "help"
    QUIT = "quit"
    SAY = "say"
    DIALOG = "dialog"


class State(enum.Enum):
    """
    Where a connection is.  A front door derives it (logged in or not, in
    a room or not, closing or not) rather than keeping it.
    """

    AUTH = "auth"
    #: The guided dialog is waiting for a user name.
    USERNAME = "username"
    #: The guided dialog is waiting for a password.
    PASSWORD = "password"
    LOBBY = "lobby"
    IN_ROOM = "in-room"
    #: BYE was sent: nothing else goes out, nothing else is read.
    CLOSED = "closed"


_ANY = frozenset({State.AUTH, State.USERNAME, State.PASSWORD, State.LOBBY, State.IN_ROOM})
_AUTH = frozenset({State.AUTH, State.USERNAME})
_LOGGED_IN = frozenset({State.LOBBY, State.IN_ROOM})
_IN_ROOM = frozenset({State.IN_ROOM})

#: What a client that has not logged in is told for any command it may not use.
LOG_IN_FIRST = "log in first: login, register, or /help"
_LOGGED_IN_ALREADY = "you are already logged in"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """
    One verb: its grammar, where it is allowed and how it is explained.

    @ivar args: The names of its arguments, in order, as the help shows them.
    @ivar states: The states it is allowed in.
    @ivar help: Its line in C{/help}; empty for the verbs without a C{/verb}.
    @ivar refused: What a logged-in client is told where it is not allowed.
    @ivar rest: Whether the last argument is the rest of the line, spaces
        and all (a password).
    @ivar ok: Whether success is answered C{OK <verb> <name>}.
    @ivar optional: The names of arguments that may follow C{args}.
    @ivar tail: The name of the free text that may follow the arguments
        (a reason, a topic), spaces and all; empty when the verb takes none.
    @ivar needs_tail: Whether that text must be there.
    """

    verb: Verb
    args: tuple[str, ...]
    states: frozenset[State]
    help: str = ""
    refused: str = LOG_IN_FIRST
    rest: bool = False
    ok: bool = False
    optional: tuple[str, ...] = ()
    tail: str = ""
    needs_tail: bool = False

    @property
    def name(self) -> str:
        """
        The word after the C{/}.
        """
        return self.verb.value

    @property
    def usage(self) -> str:
        """
        How it is typed, e.g. C{/join <room>}.
        """
        return " ".join(
            [
                f"/{self.name}",
                *(f"<{arg}>" for arg in self.args),
                *(f"[<{arg}>]" for arg in self.optional),
                *(
                    (f"<{self.tail}>" if self.needs_tail else f"[<{self.tail}>]",)
                    if self.tail
                    else ()
                ),
            ]
        )


#: How many audit entries C{/audit} shows by default, and at most.
DEFAULT_AUDIT = 50
MAX_AUDIT = 500


def _in_room(verb: Verb, args: tuple[str, ...], help: str, tail: str = "") -> CommandSpec:
    """
    A moderation command, which acts on the room the client is in.
    """
    return CommandSpec(verb, args, _IN_ROOM, help, f"/{verb.value} works only in a room", tail=tail)


#: Every verb, in the order C{/help} lists them.
TABLE: dict[Verb, CommandSpec] = {
    spec.verb: spec
    for spec in (
        CommandSpec(
            Verb.REGISTER,
            ("name", "password"),
            _AUTH,
            "create an account and log in",
            _LOGGED_IN_ALREADY,
            rest=True,
            ok=True,
        ),
        CommandSpec(
            Verb.LOGIN,
            ("name", "password"),
            _AUTH,
            "log in; or type login or register to be asked",
            _LOGGED_IN_ALREADY,
            rest=True,
            ok=True,
        ),
        CommandSpec(
            Verb.RESUME,
            ("name", "token"),
            _AUTH,
            "log in again with a session token from /token",
            _LOGGED_IN_ALREADY,
        ),
        CommandSpec(Verb.ROOMS, (), _LOGGED_IN, "list the rooms and how many are in each"),
        CommandSpec(
            Verb.CREATE,
            ("room",),
            _LOGGED_IN,
            "create a room and join it (in the lobby: create <room>)",
            ok=True,
        ),
        CommandSpec(
            Verb.JOIN,
            ("room",),
            _LOGGED_IN,
            "join a room (in the lobby: just the room's name)",
            ok=True,
        ),
        CommandSpec(
            Verb.LEAVE,
            (),
            _IN_ROOM,
            "leave the room, back to the lobby",
            "/leave works only in a room",
            ok=True,
        ),
        CommandSpec(
            Verb.WHO, (), _IN_ROOM, "list the members of your room", "/who works only in a room"
        ),
        CommandSpec(
            Verb.MSG,
            ("user", "text"),
            _LOGGED_IN,
            "send a private message, delivered later if they are away",
            rest=True,
        ),
        CommandSpec(Verb.DMS, (), _LOGGED_IN, "list your private conversations, latest first"),
        CommandSpec(
            Verb.HISTORY,
            ("room|@user",),
            _LOGGED_IN,
            "older messages of a room or a conversation",
            optional=("before-ts", "count"),
        ),
        CommandSpec(
            Verb.IGNORE,
            ("user",),
            _LOGGED_IN,
            "stop receiving someone's private messages",
            ok=True,
        ),
        CommandSpec(
            Verb.UNIGNORE, ("user",), _LOGGED_IN, "receive their private messages again", ok=True
        ),
        CommandSpec(Verb.IGNORES, (), _LOGGED_IN, "list whom you ignore"),
        _in_room(Verb.TOPIC, (), "set the room's topic (operators); empty clears it", "text"),
        _in_room(Verb.OP, ("user",), "make someone an operator of the room (owner, admins)"),
        _in_room(Verb.DEOP, ("user",), "take away someone's operator rights (owner, admins)"),
        _in_room(Verb.OPS, (), "list the room's owner and operators"),
        _in_room(Verb.KICK, ("user",), "send someone out of the room (operators)", "reason"),
        _in_room(Verb.BAN, ("user",), "keep someone out of the room (operators)", "reason"),
        _in_room(Verb.UNBAN, ("user",), "let a banned user back in (operators)"),
        _in_room(Verb.BANS, (), "list the room's bans (operators)"),
        _in_room(Verb.MUTE, ("user",), "stop someone's messages to the room (operators)"),
        _in_room(Verb.UNMUTE, ("user",), "let a muted user speak again (operators)"),
        _in_room(Verb.DELETE, ("ts",), "delete a message by its timestamp (its sender, operators)"),
        CommandSpec(
            Verb.LOCK,
            ("user",),
            _LOGGED_IN,
            "lock an account and disconnect it (admins)",
            tail="reason",
        ),
        CommandSpec(Verb.UNLOCK, ("user",), _LOGGED_IN, "unlock an account (admins)"),
        CommandSpec(
            Verb.WALL,
            (),
            _LOGGED_IN,
            "a notice to everyone logged in (admins)",
            tail="text",
            needs_tail=True,
        ),
        CommandSpec(
            Verb.DROP,
            ("room",),
            _LOGGED_IN,
            "delete a room, its history and its bans (admins)",
            tail="reason",
        ),
        CommandSpec(
            Verb.AUDIT,
            (),
            _LOGGED_IN,
            f"the last moderation and admin actions (admins; {DEFAULT_AUDIT} by default)",
            optional=("count",),
        ),
        CommandSpec(Verb.TOKEN, (), _LOGGED_IN, "a session token, for /resume after a reconnect"),
        CommandSpec(Verb.PASSWORD, (), _LOGGED_IN, "change your password (you are asked for both)"),
        CommandSpec(Verb.LOGOUT_ALL, (), _LOGGED_IN, "revoke every session token of your account"),
        CommandSpec(Verb.HELP, (), _ANY, "this list"),
        CommandSpec(Verb.QUIT, (), _ANY, "disconnect (or type exit)"),
        CommandSpec(Verb.SAY, ("text",), _IN_ROOM, "", "you are not in a room: /join <room> first"),
        CommandSpec(Verb.DIALOG, ("kind",), _AUTH, "", _LOGGED_IN_ALREADY),
    )
}

#: The commands a client types after C{/}, in help order: what a client's
#: help and completion offer.
COMMANDS: tuple[CommandSpec, ...] = tuple(spec for spec in TABLE.values() if spec.help)

#: Verbs a client can type after C{/}.
SLASH_VERBS = {spec.name: spec.verb for spec in COMMANDS}


def help_lines() -> list[str]:
    """
    The text of C{/help}, one line each.
    """
    return [
        "Commands (the verb is case-insensitive):",
        *(f"{spec.usage:<28} {spec.help}" for spec in COMMANDS),
        "In a room, any other line is a message; start it with // to send a leading /.",
        "Names: 1 to 32 of A-Z a-z 0-9 _ -. Passwords: 8 to 128 characters.",
    ]


def why_not(verb: Verb, state: State) -> str:
    """
    What a client is told for a known verb in a state that does not allow it.
    """
    if state in _AUTH:
        return LOG_IN_FIRST
    return TABLE[verb].refused


@dataclass(frozen=True, slots=True)
class Command:
    verb: Verb
    args: tuple[str, ...] = ()


#: A line that is not a command; the name the parser has always used.
CommandError = ChatError


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
    Check and split a known verb's arguments, by its grammar in L{TABLE}.

    @raise CommandError: C{bad-syntax} for a wrong number of arguments,
        C{bad-name} for a name outside C{[A-Za-z0-9_-]{1,32}}.
    """
    if verb is Verb.SAY:
        return (rest,)
    if verb is Verb.HISTORY:
        return _history_args(rest)
    spec = TABLE[verb]
    if spec.tail or spec.optional or spec.args == ("ts",):
        return _moderation_args(spec, rest)
    arity = len(spec.args)
    if spec.rest:
        # The password is everything after the one space that ends the name:
        # it may hold spaces, and its leading and trailing spaces count.
        name, sep, password = rest.partition(" ")
        if not name or not sep or not password:
            raise CommandError(ErrorCode.BAD_SYNTAX, f"usage: {spec.usage}")
        args: tuple[str, ...] = (name, password)
    else:
        args = tuple(rest.split())
        if len(args) != arity:
            raise CommandError(ErrorCode.BAD_SYNTAX, f"usage: {spec.usage}")
    if arity and not valid_name(args[0]):
        raise CommandError(ErrorCode.BAD_NAME, "names are 1 to 32 of A-Z a-z 0-9 _ -")
    return args


#: How many messages one C{/history} page may hold, and holds by default.
MAX_PAGE = 200
DEFAULT_PAGE = 50
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def _history_args(rest: str) -> tuple[str, ...]:
    """
    C{<room>|@<user> [<before-ts>] [<count>]}, either optional argument
    left out or both, in either order: a timestamp is the one, a number
    the other.

    @return: The target (C{@} kept), the stamp (C{""} for none) and the
        count, as text.
    """
    usage = f"usage: {TABLE[Verb.HISTORY].usage}"
    words = rest.split()
    if not 1 <= len(words) <= 3:
        raise CommandError(ErrorCode.BAD_SYNTAX, usage)
    target, *more = words
    before = ""
    count = ""
    for word in more:
        if word.isascii() and word.isdigit() and not count:
            if not 1 <= int(word) <= MAX_PAGE:
                raise CommandError(
                    ErrorCode.BAD_SYNTAX, f"a page holds 1 to {MAX_PAGE} messages; {usage}"
                )
            count = str(int(word))
        elif _STAMP.match(word) and not before and _is_stamp(word):
            before = word
        else:
            raise CommandError(
                ErrorCode.BAD_SYNTAX,
                f"{word[:40]} is not a timestamp like 2026-12-02T14:02:05.123Z"
                f" nor a count; {usage}",
            )
    name = target[1:] if target.startswith("@") else target
    if not valid_name(name):
        raise CommandError(ErrorCode.BAD_NAME, "names are 1 to 32 of A-Z a-z 0-9 _ -")
    return target, before, count or str(DEFAULT_PAGE)


def _moderation_args(spec: CommandSpec, rest: str) -> tuple[str, ...]:
    """
    The arguments of a moderation or admin command: its names (or a
    message's stamp), then its free text, if it takes one (C{""} when none
    was given), or its count.
    """
    usage = f"usage: {spec.usage}"
    arity = len(spec.args)
    words = rest.split(None, arity) if arity else []
    text = rest.strip() if not arity else (words[arity].strip() if len(words) > arity else "")
    args = words[:arity]
    if len(args) != arity:
        raise CommandError(ErrorCode.BAD_SYNTAX, usage)
    for name, value in zip(spec.args, args, strict=True):
        if name == "ts":
            if not (_STAMP.match(value) and _is_stamp(value)):
                raise CommandError(
                    ErrorCode.BAD_SYNTAX,
                    f"{value[:40]} is not a timestamp like 2026-12-02T14:02:05.123Z; {usage}",
                )
        elif not valid_name(value):
            raise CommandError(ErrorCode.BAD_NAME, "names are 1 to 32 of A-Z a-z 0-9 _ -")
    if spec.optional:
        # /audit [<count>]
        if not text:
            return (*args, str(DEFAULT_AUDIT))
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_AUDIT):
            raise CommandError(ErrorCode.BAD_SYNTAX, f"a count is 1 to {MAX_AUDIT}; {usage}")
        return (*args, str(int(text)))
    if spec.needs_tail and not text:
        raise CommandError(ErrorCode.BAD_SYNTAX, usage)
    if not spec.tail and text:
        raise CommandError(ErrorCode.BAD_SYNTAX, usage)
    return (*args, text) if spec.tail else tuple(args)


def _is_stamp(word: str) -> bool:
    try:
        parse_timestamp(word)
    except ValueError:
        return False
    return True


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
        raise CommandError(ErrorCode.BAD_STATE, LOG_IN_FIRST)
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
