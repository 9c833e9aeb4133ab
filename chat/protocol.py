"""
The wire: one L{ChatProtocol} per connection, a state machine over lines.

States are explicit (L{State}) and what each command may do where is one
table (L{ChatProtocol.table}); the handlers below it never check state.
Framing departs from L{LineReceiver}'s defaults on purpose: lines end with
LF (a CR before it is dropped), and an over-long line is skipped with an
error instead of costing the client its connection.
"""

# test-case-name: tests.test_protocol

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, ClassVar

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from chat import PROTOCOL_VERSION
from chat.commands import (
    MAX_LINE_BYTES,
    MAX_PASSWORD,
    MIN_PASSWORD,
    CommandError,
    Verb,
    parse_args,
    parse_bare,
    split_command,
    valid_name,
)
from chat.interfaces import IAccountStore, IChatUser, NameTaken, StoreUnavailable
from chat.lines import ErrorCode, format_line
from chat.service import ChatRealm, ChatService, ChatUser, Room

__all__ = ["ChatFactory", "ChatProtocol", "State", "TokenBucket"]

HELP = [
    "Commands (the verb is case-insensitive):",
    "/register <name> <password>  create an account and log in",
    "/login <name> <password>     log in; or type login or register to be asked",
    "/rooms                       list the rooms and how many are in each",
    "/create <room>               create a room and join it (in the lobby: create <room>)",
    "/join <room>                 join a room (in the lobby: just the room's name)",
    "/leave                       leave the room, back to the lobby",
    "/who                         list the members of your room",
    "/help                        this list",
    "/quit                        disconnect (or type exit)",
    "In a room, any other line is a message; start it with // to send a leading /.",
    "Names: 1 to 32 of A-Z a-z 0-9 _ -. Passwords: 8 to 128 characters.",
]


class State(enum.Enum):
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


class TokenBucket:
    """
    Flood control: C{rate} lines a second on average, C{burst} at once.
    """

    __slots__ = ("burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, clock: IReactorTime, rate: float, burst: float) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = clock.seconds()

    def take(self) -> bool:
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        # The epsilon forgives float rounding: 0.1 s at 10/s is one line.
        if self.tokens >= 0.999999:
            self.tokens -= 1
            return True
        return False


class ChatProtocol(LineReceiver):
    """
    One client connection.

    While a login, registration or room creation is in flight the
    connection is paused, so lines a client sends ahead (a pasted script,
    say) are handled in order once the answer is out.
    """

    delimiter = b"\n"
    # One byte more than the contract's limit, for the CR before the LF.
    MAX_LENGTH = MAX_LINE_BYTES + 1
    log = Logger()

    Handler = Callable[..., None]
    table: ClassVar[dict[Verb, tuple[Handler, frozenset[State]]]]

    def __init__(self, factory: ChatFactory) -> None:
        self.factory = factory
        self.state = State.AUTH
        self.user: ChatUser | None = None
        self._logout: Callable[[], None] | None = None
        self._dialog: tuple[str, str] | None = None
        self._skipping = False
        self._refeed = b""
        self._gone = False
        self._closed: Deferred[None] | None = None
        self.peer = "?"
        rate, burst = factory.flood
        self._bucket = TokenBucket(factory.clock, rate, burst) if rate > 0 else None

    # Connection life

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        if ITCPTransport.providedBy(transport):
            # Without it, Nagle and delayed ACKs put 40 ms steps into latency.
            transport.setTcpNoDelay(True)
        self.peer = _describe(transport.getPeer())
        self.factory.service.connections.add(self)
        self.log.info("Connection from {peer}", peer=self.peer)
        self.send(
            "HELLO",
            "chatroom",
            str(PROTOCOL_VERSION),
            text="Welcome to chatroom. Type login or register, or /help.",
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gone = True
        self.state = State.CLOSED
        self.factory.service.connections.discard(self)
        if self._logout is not None:
            self._logout()
            self._logout = None
        self.log.info(
            "Connection from {peer} closed ({user})",
            peer=self.peer,
            user=self.user.name if self.user else "not logged in",
        )
        if self._closed is not None:
            d, self._closed = self._closed, None
            d.callback(None)

    def shutdown(self, reason: str) -> Deferred[None]:
        """
        Say BYE and close; fires when the connection is gone.
        """
        if self._gone:
            return succeed(None)
        d = self._closed
        if d is None:
            d = self._closed = Deferred()
            self._bye(reason)
        return d

    def _bye(self, reason: str) -> None:
        if self._logout is not None:
            # Leave the room first, so that no line can follow BYE.
            self._logout()
            self._logout = None
        self.send("BYE", text=reason)
        self.state = State.CLOSED
        self.transport.loseConnection()  # type: ignore[union-attr]

    # Output

    def write(self, data: bytes) -> None:
        if self.state is not State.CLOSED:
            self.transport.write(data)  # type: ignore[union-attr]

    def send(self, tag: str, *args: str, text: str | None = None) -> None:
        self.write(format_line(tag, *args, text=text))

    def error(self, code: ErrorCode, text: str) -> None:
        self.send("ERR", code.value, text=text)

    # Framing

    def dataReceived(self, data: bytes) -> None:
        while True:
            if self._skipping:
                end = data.find(b"\n")
                if end < 0:
                    return
                self._skipping = False
                data = data[end + 1 :]
            super().dataReceived(data)
            if not self._refeed or self.state is State.CLOSED:
                return
            data, self._refeed = self._refeed, b""

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        Skip the long line, not the connection: the lines after it count.
        """
        self.error(
            ErrorCode.LINE_TOO_LONG, f"lines are at most {MAX_LINE_BYTES} bytes; line skipped"
        )
        end = line.find(b"\n")
        if end < 0:
            self._skipping = True
        else:
            self._refeed = line[end + 1 :]

    def lineReceived(self, line: bytes) -> None:
        if self.state is State.CLOSED:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE_BYTES:
            self.error(
                ErrorCode.LINE_TOO_LONG, f"lines are at most {MAX_LINE_BYTES} bytes; line skipped"
            )
            return
        if b"\r" in line:
            self.error(ErrorCode.BAD_SYNTAX, "a CR is only allowed right before the LF")
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.error(ErrorCode.BAD_ENCODING, "lines must be UTF-8; line skipped")
            return
        if not text.strip(" \t"):
            return
        if self._bucket is not None and not self._bucket.take():
            self.error(ErrorCode.RATE_LIMITED, "too many lines; slow down")
            return
        try:
            self.dispatch(text)
        except CommandError as e:
            self.error(e.code, e.detail)

    # Dispatch

    def dispatch(self, line: str) -> None:
        """
        Turn a line into a command for this state, and run it.

        @raise CommandError: The line is not a command here.
        """
        state = self.state
        if state is State.PASSWORD:
            if line.strip(" \t").lower() in ("/quit", "exit"):
                return self.do_quit()
            return self.dialog_password(line)
        if line.startswith("/"):
            verb, rest = split_command(line)
            command = None
        elif state is State.IN_ROOM:
            if line.strip(" \t").lower() == "exit":
                return self.do_quit()
            verb, rest = Verb.SAY, line
            command = None
        elif state is State.USERNAME:
            if line.strip(" \t").lower() == "exit":
                return self.do_quit()
            return self.dialog_username(line.strip(" \t"))
        else:
            command = parse_bare(line, in_auth=state is State.AUTH, in_lobby=state is State.LOBBY)
            verb, rest = command.verb, ""
        handler, states = self.table[verb]
        if state not in states:
            raise CommandError(ErrorCode.BAD_STATE, _why_not(verb, state))
        args = command.args if command is not None else parse_args(verb, rest)
        handler(self, *args)

    # AUTH

    def do_login(self, name: str, password: str) -> None:
        self._dialog = None
        self._authenticate(name, password)

    def do_register(self, name: str, password: str) -> None:
        self._dialog = None
        accounts = self.factory.accounts
        if accounts is None:
            raise CommandError(
                ErrorCode.REGISTRATION_CLOSED, "this server does not take new accounts"
            )
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise CommandError(
                ErrorCode.WEAK_PASSWORD,
                f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            )
        if accounts.user_exists(name):
            raise CommandError(ErrorCode.NAME_TAKEN, f"{name} is taken")
        self.pauseProducing()
        d = accounts.add_user(name, password)
        d.addCallbacks(lambda _: self._registered(name), self._register_failed)
        d.addErrback(self._bug)

    def do_dialog(self, kind: str) -> None:
        if kind == "register" and self.factory.accounts is None:
            raise CommandError(
                ErrorCode.REGISTRATION_CLOSED, "this server does not take new accounts"
            )
        self._dialog = (kind, "")
        self.state = State.USERNAME
        self.send("PROMPT", "username", text="user name:")

    def dialog_username(self, name: str) -> None:
        assert self._dialog is not None
        kind = self._dialog[0]
        if not valid_name(name):
            self.error(ErrorCode.BAD_NAME, "names are 1 to 32 of A-Z a-z 0-9 _ -")
        elif (
            kind == "register" and self.factory.accounts and self.factory.accounts.user_exists(name)
        ):
            self.error(ErrorCode.NAME_TAKEN, f"{name} is taken")
        else:
            self._dialog = (kind, name)
            self.state = State.PASSWORD
            self.send("PROMPT", "password", text="password:")
            return
        self.send("PROMPT", "username", text="user name:")

    def dialog_password(self, password: str) -> None:
        assert self._dialog is not None
        kind, name = self._dialog
        if kind == "login":
            self.state = State.AUTH
            self.do_login(name, password)
            return
        try:
            self.do_register(name, password)
        except CommandError as e:
            self.error(e.code, e.detail)
            if e.code is ErrorCode.WEAK_PASSWORD:
                self._dialog = (kind, name)
                self.send("PROMPT", "password", text="password:")
                return
        self.state = State.AUTH

    def _authenticate(self, name: str, password: str) -> None:
        self.pauseProducing()
        credentials = UsernamePassword(name.encode("utf-8"), password.encode("utf-8"))
        d = self.factory.portal.login(credentials, self, IChatUser)
        d.addCallbacks(self._logged_in, self._login_failed, errbackArgs=(name,))
        d.addErrback(self._bug)

    def _logged_in(
        self, result: tuple[Any, ChatUser, Callable[[], None]], verb: str = "login"
    ) -> None:
        _, user, logout = result
        if self.state is State.CLOSED:
            # The client hung up, or the server said BYE, while bcrypt ran.
            logout()
            return
        self.user, self._logout = user, logout
        self.state = State.LOBBY
        self.log.info(
            "{user} logged in ({verb}) from {peer}", user=user.name, verb=verb, peer=self.peer
        )
        self.send("OK", verb, user.name)
        self.do_rooms()
        self.resumeProducing()

    def _login_failed(self, failure: Failure, name: str) -> None:
        if self.state is State.CLOSED:
            return
        if failure.check(UnauthorizedLogin):
            self.log.info("Failed login as {user} from {peer}", user=name, peer=self.peer)
            self.error(ErrorCode.BAD_CREDENTIALS, "wrong name or password")
        else:
            self.log.failure("Login as {user} failed", failure, user=name)
            self.error(ErrorCode.UNAVAILABLE, "cannot check accounts right now; try again")
        self.state = State.AUTH
        self._resume()

    def _registered(self, name: str) -> None:
        realm: ChatRealm = self.factory.realm
        self._logged_in(realm.requestAvatar(name, self, IChatUser), verb="register")

    def _register_failed(self, failure: Failure) -> None:
        if self.state is State.CLOSED:
            return
        if failure.check(NameTaken):
            self.error(ErrorCode.NAME_TAKEN, "that name is taken")
        else:
            self.error(ErrorCode.UNAVAILABLE, "cannot store the account right now; try again")
        self.state = State.AUTH
        self._resume()

    def _bug(self, failure: Failure) -> None:
        self.log.failure("Bug in {peer}'s connection", failure, peer=self.peer)
        self._resume()

    def _resume(self) -> None:
        if self.state is not State.CLOSED:
            self.resumeProducing()

    # LOBBY and IN_ROOM

    def do_rooms(self) -> None:
        for name, members in self.factory.service.room_list():
            self.send("ROOM", name, str(members))
        self.send("END", "rooms")

    def do_create(self, name: str) -> None:
        service = self.factory.service
        if service.room_exists(name):
            raise CommandError(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
        self.pauseProducing()
        d = service.create(name)
        d.addCallbacks(self._created, self._create_failed, errbackArgs=(name,))
        d.addErrback(self._bug)

    def _created(self, room: Room) -> None:
        if self.state is not State.CLOSED:
            self.send("OK", "create", room.name)
            self._enter(room)
            self.resumeProducing()

    def _create_failed(self, failure: Failure, name: str) -> None:
        if self.state is State.CLOSED:
            return
        if failure.check(NameTaken):
            self.error(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
        else:
            self.error(ErrorCode.UNAVAILABLE, "cannot create rooms right now; try again")
        self._resume()

    def do_join(self, name: str) -> None:
        room = self.factory.service.find(name)
        if room is None:
            raise CommandError(
                ErrorCode.NO_SUCH_ROOM, f"no room named {name}; /create {name} makes one"
            )
        self._enter(room)

    def _enter(self, room: Room) -> None:
        assert self.user is not None
        self.factory.service.join(self.user, room)
        self.state = State.IN_ROOM
        name = room.name
        out = [format_line("OK", "join", name)]
        out.extend(
            format_line("HISTORY", name, ts, user, text=text) for ts, user, text in room.recent
        )
        out.append(format_line("END", "history", name))
        self.write(b"".join(out))

    def do_leave(self) -> None:
        assert self.user is not None
        room = self.factory.service.leave(self.user)
        assert room is not None
        self.state = State.LOBBY
        self.send("OK", "leave", room.name)

    def do_who(self) -> None:
        assert self.user is not None and self.user.room is not None
        room = self.user.room
        out = [format_line("MEMBER", room.name, name) for name in room.users()]
        out.append(format_line("END", "members", room.name))
        self.write(b"".join(out))

    def do_say(self, text: str) -> None:
        assert self.user is not None
        try:
            self.factory.service.say(self.user, text)
        except StoreUnavailable:
            self.log.error("Could not store a message from {user}", user=self.user.name)
            self.error(ErrorCode.UNAVAILABLE, "cannot store messages right now; not sent")

    # Anywhere

    def do_help(self) -> None:
        out = [format_line("INFO", text=line) for line in HELP]
        out.append(format_line("END", "help"))
        self.write(b"".join(out))

    def do_quit(self) -> None:
        self._bye("Goodbye")


ChatProtocol.table = {
    Verb.REGISTER: (ChatProtocol.do_register, _AUTH),
    Verb.LOGIN: (ChatProtocol.do_login, _AUTH),
    Verb.DIALOG: (ChatProtocol.do_dialog, _AUTH),
    Verb.ROOMS: (ChatProtocol.do_rooms, _LOGGED_IN),
    Verb.CREATE: (ChatProtocol.do_create, _LOGGED_IN),
    Verb.JOIN: (ChatProtocol.do_join, _LOGGED_IN),
    Verb.LEAVE: (ChatProtocol.do_leave, _IN_ROOM),
    Verb.WHO: (ChatProtocol.do_who, _IN_ROOM),
    Verb.SAY: (ChatProtocol.do_say, _IN_ROOM),
    Verb.HELP: (ChatProtocol.do_help, _ANY),
    Verb.QUIT: (ChatProtocol.do_quit, _ANY),
}


def _why_not(verb: Verb, state: State) -> str:
    if state in _AUTH:
        return "log in first: login, register, or /help"
    if verb in (Verb.REGISTER, Verb.LOGIN, Verb.DIALOG):
        return "you are already logged in"
    if verb is Verb.SAY:
        return "you are not in a room: /join <room> first"
    return f"/{verb.value} works only in a room"


def _describe(address: IAddress) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None:
        return f"{host}:{port}"
    return str(getattr(address, "name", None) or address)


class ChatFactory(Factory):
    """
    Builds L{ChatProtocol}s and hands them what they share.

    @ivar accounts: Where C{/register} adds accounts, or L{None} when the
        credentials checker cannot add any (registration closed).
    @ivar flood: Lines a second and burst for each connection; a rate of 0
        turns flood control off.
    """

    protocol = ChatProtocol  # type: ignore[assignment]

    def __init__(
        self,
        service: ChatService,
        portal: Portal,
        realm: ChatRealm,
        accounts: IAccountStore | None,
        clock: IReactorTime,
        flood: tuple[float, float] = (10.0, 20.0),
    ) -> None:
        self.service = service
        self.portal = portal
        self.realm = realm
        self.accounts = accounts
        self.clock = clock
        self.flood = flood

    def buildProtocol(self, addr: IAddress | None) -> ChatProtocol:
        return ChatProtocol(self)
