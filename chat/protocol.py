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
from twisted.internet import tcp
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper
from twisted.python.failure import Failure

from chat import PROTOCOL_VERSION, telnet
from chat.commands import (
    MAX_LINE_BYTES,
    MAX_PASSWORD,
    MIN_PASSWORD,
    CommandError,
    Verb,
    looks_like_http,
    parse_args,
    parse_bare,
    split_command,
    valid_name,
)
from chat.guard import (
    AddressPolicy,
    Limits,
    LoginThrottle,
    Quota,
    SendQueue,
    TokenBucket,
    clean_text,
    has_visible,
    minutes,
)
from chat.interfaces import IAccountStore, IChatUser, NameTaken, StoreUnavailable
from chat.lines import ErrorCode, format_line
from chat.quiet import SilentTally
from chat.service import ChatRealm, ChatService, ChatUser, Room

__all__ = ["ChatFactory", "ChatProtocol", "State"]

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


def _OWN_LOGOUT() -> None:
    """
    Stands in C{ChatProtocol._logout} for the logged-in user's own
    C{logout}; never called.
    """


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
        # Every attribute a connection will ever have is set here, first,
        # including those Twisted's base classes would only set later (with
        # the values of their class defaults, so nothing changes).  Python
        # 3.11 keeps an instance's attributes as one table of names per
        # class plus a small array of values per instance, and each new
        # instance shrinks the room left in that table, down to one spare
        # name: under a burst of connections a name first set after
        # __init__ (_buffer on the first line read, paused on the first
        # login) no longer fits, and every connection that sets it gets a
        # full dict of its own, about 0.8 KiB more per connection (2.5 ->
        # 1.8 KiB a connection in the memory benchmark).  For the same
        # reason, rarely used state must not be left to class defaults.
        self.transport = None
        self.connected = 0
        self.paused = False
        self._buffer = b""
        self._busyReceiving = False
        self._direct = False
        self.factory = factory
        self.state = State.AUTH
        self.user: ChatUser | None = None
        self._logout: Callable[[], None] | None = None
        self._dialog: tuple[str, str] | None = None
        self._skipping = False
        self._refeed = b""
        self._gone = False
        self._closed: Deferred[None] | None = None
        self.address: str | None = None
        #: Until the client's first byte: such a connection (a load
        #: balancer's health check, a port scan) is only counted
        #: (L{chat.quiet.SilentTally}), not logged.
        self._silent = True
        #: The start of a telnet command cut off at the end of a read.
        self._telnet = b""
        limits = factory.limits
        self._bucket = (
            TokenBucket(factory.clock, limits.flood_rate, limits.flood_burst)
            if limits.flood_rate > 0
            else None
        )
        self._sendq = SendQueue(limits.max_sendq)
        self._login_timer: IDelayedCall | None = None

    @property
    def peer(self) -> str:
        """
        The client's address, for the logs: made when asked, not kept, as
        every byte per connection counts at ten thousand connections.
        """
        transport = self.transport
        return _describe(transport.getPeer()) if transport is not None else "?"

    # Connection life

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        if ITCPTransport.providedBy(transport):
            # Without it, Nagle and delayed ACKs put 40 ms steps into latency.
            transport.setTcpNoDelay(True)
        transport.registerProducer(self._sendq, True)  # type: ignore[attr-defined]
        self._direct = isinstance(transport, tcp.Connection)
        factory = self.factory
        factory.service.connections.add(self)
        self.send(
            "HELLO",
            "chatroom",
            str(PROTOCOL_VERSION),
            text="Welcome to chatroom. Type login or register, or /help.",
        )
        # Behind a load balancer (--port haproxy:...), who the client is
        # comes in the PROXY header, before its first line.
        if not isinstance(transport, HAProxyProtocolWrapper):
            self._arrived()
        limits = factory.limits
        if limits.login_timeout and self.state is not State.CLOSED:
            self._login_timer = factory.clock.callLater(limits.login_timeout, self._timed_out)

    def _arrived(self) -> None:
        """
        Count the client against its address's limit, once its address is
        known.
        """
        factory = self.factory
        limits = factory.limits
        assert self.transport is not None
        self.address = factory.addresses.key(getattr(self.transport.getPeer(), "host", None))
        if self.address is not None:
            count = factory.addresses.opened(self.address)
            if limits.max_connections_per_ip and count > limits.max_connections_per_ip:
                self.log.warn(
                    "Refusing {peer}: {count} connections from {address}",
                    peer=self.peer,
                    count=count,
                    address=self.address,
                )
                self.error(ErrorCode.RATE_LIMITED, "too many connections from your address")
                self._bye("too many connections")

    def _stop_login_timer(self) -> None:
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None

    def _timed_out(self) -> None:
        self._login_timer = None
        if self.user is None and self.state is not State.CLOSED:
            if not self._silent:
                self.log.info("{peer} did not log in in time", peer=self.peer)
            self._bye("login timed out")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gone = True
        self.state = State.CLOSED
        factory = self.factory
        factory.service.connections.discard(self)
        if self.address is not None:
            factory.addresses.closed(self.address)
            self.address = None
        self._stop_login_timer()
        if self._logout is not None:
            self._log_out()
        if self._silent:
            factory.silent.closed(self.peer)
        else:
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
            self._log_out()
        self.send("BYE", text=reason)
        self.state = State.CLOSED
        transport = self.transport
        assert transport is not None
        # A TLS transport holds the close back while a producer is registered.
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()

    def _log_out(self) -> None:
        """
        Run the realm's logout, once.
        """
        logout = self._logout
        if logout is _OWN_LOGOUT:
            assert self.user is not None
            self.user.logout()
        elif logout is not None:
            logout()
        self._logout = None

    # Output

    def write(self, data: bytes) -> None:
        """
        Write lines meant for this connection alone, after whatever its room
        still has to send: lines arrive in the order they happened.
        """
        user = self.user
        if user is not None:
            room = user.room
            if room is not None and room.pending:
                self.factory.service.flush_room(room)
        self.deliver(data)

    def deliver(self, data: bytes) -> None:
        """
        Write lines, within the connection's send queue limit.

        Twisted's C{write} always buffers, and sends on the reactor's next
        writable event: for every member of every busy room that is two more
        epoll calls and one more turn of latency per batch.  When the
        transport is plain TCP with nothing queued, the bytes go straight to
        the kernel instead; whatever the kernel does not take, and every
        other case (TLS, Unix sockets, test transports, a connection going
        away), goes through C{transport.write} as usual, so ordering and
        error handling stay Twisted's.
        """
        if self.state is State.CLOSED:
            return
        if not self._sendq.add(len(data)):
            self._overflow()
            return
        transport: Any = self.transport
        if self._direct and not (
            transport._tempDataLen
            or transport.dataBuffer
            or transport.disconnecting
            or not transport.connected
        ):
            try:
                sent = transport.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                # Let Twisted find the broken connection its own way.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def _overflow(self) -> None:
        """
        The client has stopped reading: drop it before its unsent output
        grows without bound.  Nothing more is written (not even BYE, which
        could not be delivered); the room hears of it as a PART once the
        connection is gone.
        """
        self.log.warn(
            "Dropping {peer} ({user}): more than {limit} bytes unsent",
            peer=self.peer,
            user=self.user.name if self.user else "not logged in",
            limit=self._sendq.limit,
        )
        self.state = State.CLOSED
        # Not now: this runs inside a broadcast, which must not see the
        # room change under it (some transports report the loss at once).
        self.factory.clock.callLater(0, self.transport.abortConnection)  # type: ignore[union-attr]

    def send(self, tag: str, *args: str, text: str | None = None) -> None:
        self.write(format_line(tag, *args, text=text))

    def error(self, code: ErrorCode, text: str) -> None:
        self.send("ERR", code.value, text=text)

    # Framing

    def dataReceived(self, data: bytes) -> None:
        if self._silent and data:
            self._spoke()
        if self._telnet or b"\xff" in data:
            data = self._untelnet(data)
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

    def _spoke(self) -> None:
        """
        The first bytes: now the connection is worth an info line.
        """
        self._silent = False
        self.log.info("Connection from {peer}", peer=self.peer)
        if isinstance(self.transport, HAProxyProtocolWrapper):
            self._arrived()

    def _untelnet(self, data: bytes) -> bytes:
        """
        Answer and remove the telnet commands in C{data} (see L{chat.telnet}).
        """
        data, replies, self._telnet, abandon = telnet.split_commands(
            self._telnet + data, self._buffer[-3:]
        )
        if replies:
            self.write(replies)
        if abandon:
            # Ctrl-C: the line being typed is dropped; lines that ended
            # before it (held while a login runs, say) still count.
            self._buffer = self._buffer[: self._buffer.rfind(b"\n") + 1]
            self._skipping = False
        return data

    def _refuse_http(self) -> None:
        """
        Close a connection that speaks HTTP, at once and without a word:
        a web page can make a browser send a request to this port, and its
        body must never run as chat lines (as Redis does, nothing is sent).
        """
        self.log.warn("Closing {peer}: it sent an HTTP request", peer=self.peer)
        self.state = State.CLOSED
        transport = self.transport
        assert transport is not None
        transport.unregisterProducer()  # type: ignore[attr-defined]
        transport.loseConnection()

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
        if self.user is None and self.state is not State.PASSWORD and looks_like_http(text):
            return self._refuse_http()
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
        if not self.factory.service.started:
            return self._not_ready(line)
        state = self.state
        # What a line is, is decided on its cleaned text: a control
        # character in front of a command must not make it a message.
        # Passwords alone are taken exactly as typed.
        raw, line = line, clean_text(line)
        if state is State.PASSWORD:
            if line.strip(" \t").lower() in ("/quit", "exit"):
                return self.do_quit()
            return self.dialog_password(raw)
        if line.startswith("/"):
            verb, rest = split_command(line)
            if line is not raw and verb in (Verb.LOGIN, Verb.REGISTER):
                rest = _typed_password(raw, rest)
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

    def _not_ready(self, line: str) -> None:
        """
        Before the rooms are loaded (from Redis, which may not answer yet)
        a client is greeted but can do nothing except leave: it is told
        so, rather than left waiting in silence.
        """
        if line.strip(" \t").lower() in ("/quit", "exit"):
            self.do_quit()
        else:
            self.error(ErrorCode.UNAVAILABLE, "starting up; try again shortly")

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
        self._check_registrations()
        self._begin_slow_work()
        if self.address is not None:
            # Counted once it costs a bcrypt, whatever becomes of it.
            self.factory.registrations.spend(self.address)
        d = accounts.add_user(name, password)
        d.addBoth(self._end_slow_work)
        d.addCallbacks(lambda _: self._registered(name), self._register_failed)
        d.addErrback(self._bug)

    def do_dialog(self, kind: str) -> None:
        if kind == "register":
            if self.factory.accounts is None:
                raise CommandError(
                    ErrorCode.REGISTRATION_CLOSED, "this server does not take new accounts"
                )
            # Say so before asking for a name and a password.
            self._check_registrations()
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
        # Back to AUTH before the answer, which may come at once and move on
        # to LOBBY.
        self.state = State.AUTH
        if kind == "login":
            self.do_login(name, password)
            return
        try:
            self.do_register(name, password)
        except CommandError as e:
            self.error(e.code, e.detail)
            if e.code is ErrorCode.WEAK_PASSWORD:
                self._dialog = (kind, name)
                self.state = State.PASSWORD
                self.send("PROMPT", "password", text="password:")

    def _check_registrations(self) -> None:
        """
        @raise CommandError: This address has registered as many accounts
            as it may for now (C{--max-registrations-per-ip}).
        """
        if self.address is None:
            return
        quota = self.factory.registrations
        wait = quota.wait(self.address)
        if wait:
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                f"your address may register {quota.limit} accounts an hour; "
                f"try again in {minutes(wait)}",
            )

    def _throttle_keys(self, name: str) -> list[str]:
        keys = ["user:" + name.lower()]
        if self.address is not None:
            keys.append("addr:" + self.address)
        return keys

    def _authenticate(self, name: str, password: str) -> None:
        factory = self.factory
        wait = factory.throttle.locked(self._throttle_keys(name))
        if wait:
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                f"too many failed logins; try again in {int(wait) + 1} s",
            )
        self._begin_slow_work()
        credentials = UsernamePassword(name.encode("utf-8"), password.encode("utf-8"))
        d = factory.portal.login(credentials, self, IChatUser)
        d.addBoth(self._end_slow_work)
        d.addCallbacks(self._logged_in, self._login_failed, errbackArgs=(name,))
        d.addErrback(self._bug)

    def _begin_slow_work(self) -> None:
        """
        Account for one more bcrypt in flight, refusing it when the queue
        is already long: a login storm waits in a bounded line.
        """
        factory = self.factory
        limit = factory.limits.max_pending_logins
        if limit and factory.pending_logins >= limit:
            raise CommandError(ErrorCode.UNAVAILABLE, "the server is busy; try again shortly")
        factory.pending_logins += 1
        self.pauseProducing()

    def _end_slow_work(self, result: Any) -> Any:
        self.factory.pending_logins -= 1
        return result

    def _logged_in(
        self, result: tuple[Any, ChatUser, Callable[[], None]], verb: str = "login"
    ) -> None:
        _, user, logout = result
        if self.state is State.CLOSED:
            # The client hung up, or the server said BYE, while bcrypt ran.
            logout()
            return
        # The realm's logout is the user's own: rather than keep that bound
        # method (64 bytes a connection), say so and call it when needed.
        self.user = user
        self._logout = _OWN_LOGOUT if logout == user.logout else logout
        self.state = State.LOBBY
        self.factory.throttle.succeeded("user:" + user.key)
        self.factory.service.outage.over()
        self._stop_login_timer()
        self.log.info(
            "{user} logged in ({verb}) from {peer}", user=user.name, verb=verb, peer=self.peer
        )
        self.send("OK", verb, user.name)
        self.do_rooms()
        self.resumeProducing()

    def _login_failed(self, failure: Failure, name: str) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.AUTH
        outage = self.factory.service.outage
        if not failure.check(UnauthorizedLogin):
            if failure.check(StoreUnavailable):
                outage.refuse("logins", 1, failure.value, action="check logins", who="users")
            else:
                self.log.failure("Login as {user} failed", failure, user=name)
            self.error(ErrorCode.UNAVAILABLE, "cannot check accounts right now; try again")
            self._resume()
            return
        outage.over()
        self.log.info("Failed login as {user} from {peer}", user=name, peer=self.peer)
        delay = self.factory.throttle.failed(self._throttle_keys(name))

        def answer() -> None:
            if self.state is not State.CLOSED:
                self.error(ErrorCode.BAD_CREDENTIALS, "wrong name or password")
                self._resume()

        if delay:
            # Held back, with the connection paused: guessing gets slower.
            self.factory.clock.callLater(delay, answer)
        else:
            answer()

    def _registered(self, name: str) -> None:
        realm: ChatRealm = self.factory.realm
        self._logged_in(realm.requestAvatar(name, self, IChatUser), verb="register")

    def _register_failed(self, failure: Failure) -> None:
        if self.state is State.CLOSED:
            return
        if failure.check(NameTaken):
            self.error(ErrorCode.NAME_TAKEN, "that name is taken")
        else:
            if failure.check(StoreUnavailable):
                self.factory.service.outage.refuse(
                    "registrations", 1, failure.value, action="add accounts", who="users"
                )
            else:
                self.log.failure("Registration failed", failure)
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
        self.write(self.factory.service.room_listing())

    def do_create(self, name: str) -> None:
        factory = self.factory
        service = factory.service
        if service.room_exists(name):
            raise CommandError(ErrorCode.ROOM_EXISTS, f"{name} exists; /join it")
        limit = factory.limits.max_rooms
        if limit and service.room_count() >= limit:
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                f"this server has {limit} rooms, its limit; join one of them (/rooms lists them)",
            )
        assert self.user is not None
        key = self.user.key
        quota = factory.room_quota
        wait = quota.wait(key)
        if wait:
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                f"you may create {quota.limit} rooms an hour; try again in {minutes(wait)}",
            )
        # Counted now, so that rooms still being created count too.
        quota.spend(key)
        self.pauseProducing()
        d = service.create(name)
        d.addCallbacks(self._created, self._create_failed, errbackArgs=(name, key))
        d.addErrback(self._bug)

    def _created(self, room: Room) -> None:
        if self.state is not State.CLOSED:
            self.send("OK", "create", room.name)
            self._enter(room)
            self.resumeProducing()

    def _create_failed(self, failure: Failure, name: str, key: str) -> None:
        self.factory.room_quota.refund(key)
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
        """
        Post C{text}, which L{dispatch} has cleaned, unless nothing of it
        would show.
        """
        assert self.user is not None
        if not has_visible(text):
            return
        self.factory.service.say(self.user, text)

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


def _typed_password(raw: str, rest: str) -> str:
    """
    The arguments of a C{/login} or C{/register} line whose cleaned C{rest}
    was parsed, with the password as the client typed it in C{raw}: the
    text after the line's second space, when it has one.
    """
    name = rest.partition(" ")[0]
    password = raw.split(" ", 2)[2:]
    return f"{name} {password[0]}" if password and password[0] else rest


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
    @ivar limits: The bounds each connection lives within.
    @ivar pending_logins: How many bcrypt jobs are queued or running.
    @ivar room_quota: Rooms created per account (lower-case name).
    @ivar registrations: Registrations that cost a bcrypt, per address key.
    @ivar silent: Counts the connections that closed without a word.
    """

    protocol = ChatProtocol  # type: ignore[assignment]

    def __init__(
        self,
        service: ChatService,
        portal: Portal,
        realm: ChatRealm,
        accounts: IAccountStore | None,
        clock: IReactorTime,
        limits: Limits | None = None,
    ) -> None:
        self.service = service
        self.portal = portal
        self.realm = realm
        self.accounts = accounts
        self.clock = clock
        self.limits = limits = limits or Limits()
        self.addresses = AddressPolicy(limits.exempt)
        self.throttle = LoginThrottle(clock)
        self.pending_logins = 0
        self.room_quota = Quota(clock, limits.max_rooms_per_hour)
        self.registrations = Quota(clock, limits.max_registrations_per_ip)
        self.silent = SilentTally(clock)

    def buildProtocol(self, addr: IAddress | None) -> ChatProtocol:
        return ChatProtocol(self)
