"""
The line front door: one L{ChatProtocol} per connection, lines in,
lines out.

It parses each line into a command (L{chat.commands}), checks it against
the command table's states, and calls the avatar's action
(L{chat.avatar.ChatUser}); what the domain tells it comes back as events,
which L{chat.wire.encoder} turns into lines.  The state is derived, never
kept: logged in or not, in a room or not (the avatar's room), where the
guided login dialog is, and one flag, L{ChatProtocol.closing}.
Framing departs from L{LineReceiver}'s defaults on purpose: lines end with
LF (a CR before it is dropped), and an over-long line is skipped with an
error instead of costing the client its connection.
"""

# test-case-name: tests.test_protocol

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from chat import PROTOCOL_VERSION
from chat.avatar import ChatRealm, ChatUser
from chat.commands import (
    MAX_LINE_BYTES,
    TABLE,
    CommandError,
    State,
    Verb,
    looks_like_http,
    parse_args,
    parse_bare,
    split_command,
    why_not,
)
from chat.errors import ChatError
from chat.guard import (
    AddressPolicy,
    Limits,
    LoginThrottle,
    Quota,
    SendQueue,
    TokenBucket,
    clean_text,
)
from chat.interfaces import IAccountStore, IChatClient
from chat.lines import ErrorCode, format_line
from chat.logs import KeptLogger
from chat.rooms import Room
from chat.service import ChatService
from chat.wire import direct, telnet
from chat.wire.encoder import END_ROOMS, HELP, LINES, LineEncoder
from chat.wire.login import OWN_LOGOUT, LoginFactory, LoginFlow
from chat.wire.moderation import ModerationCommands
from chat.wire.peer import describe, known_at_connect
from chat.wire.quiet import SilentTally
from chat.wire.sessions import SessionCommands

__all__ = ["ChatFactory", "ChatProtocol", "State"]

T = TypeVar("T")


@implementer(IChatClient)
class ChatProtocol(LineReceiver, LoginFlow, ModerationCommands, SessionCommands):
    """
    One client connection, and the mind of its avatar.

    While a login, registration or room creation is in flight the
    connection is paused, so lines a client sends ahead (a pasted script,
    say) are handled in order once the answer is out.
    """

    delimiter = b"\n"
    # One byte more than the contract's limit, for the CR before the LF.
    MAX_LENGTH = MAX_LINE_BYTES + 1
    # Its module's name before chat/wire/ existed.
    log = KeptLogger(namespace="chat.protocol.ChatProtocol")

    #: How the domain's events become bytes: the same for every connection.
    encoder: ClassVar[LineEncoder] = LINES

    Handler = Callable[..., None]
    #: What each verb does; where it may, is L{chat.commands.TABLE}'s.
    handlers: ClassVar[dict[Verb, Handler]]

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
        #: The one flag for the end: BYE sent, the client dropped or the
        #: connection lost.  Nothing more is read or written.
        self.closing = False
        self.user: ChatUser | None = None
        self._logout: Callable[[], None] | None = None
        self._dialog: tuple[str, str] | None = None
        self._skipping = False
        self._refeed = b""
        #: Fires when the connection is gone, once L{shutdown} asked.
        self._on_close: Deferred[None] | None = None
        self.address: str | None = None
        #: Until the client's first byte: such a connection (a load
        #: balancer's health check, a port scan) is only counted
        #: (L{chat.wire.quiet.SilentTally}), not logged.
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
    def state(self) -> State:
        """
        Where the connection is, derived from what it holds: the command
        table's states are checked against it.
        """
        if self.closing:
            return State.CLOSED
        user = self.user
        dialog = self._dialog
        if user is not None:
            if dialog is not None:
                # Changing its password: every line is one.
                return State.PASSWORD
            return State.LOBBY if user.room is None else State.IN_ROOM
        if dialog is None:
            return State.AUTH
        return State.PASSWORD if dialog[1] else State.USERNAME

    @property
    def peer(self) -> str:
        """
        The client's address, for the logs: made when asked, not kept, as
        every byte per connection counts at ten thousand connections.
        """
        transport = self.transport
        return describe(transport.getPeer()) if transport is not None else "?"

    # Connection life

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        if ITCPTransport.providedBy(transport):
            # Without it, Nagle and delayed ACKs put 40 ms steps into latency.
            transport.setTcpNoDelay(True)
        transport.registerProducer(self._sendq, True)  # type: ignore[attr-defined]
        self._direct = direct.can_write_directly(transport)
        factory = self.factory
        factory.service.connections.add(self)
        self.send(
            "HELLO",
            "chatroom",
            str(PROTOCOL_VERSION),
            text="Welcome to chatroom. Type login or register, or /help.",
        )
        # Behind a load balancer, with the first bytes (see _spoke).
        if known_at_connect(transport):
            self._arrived()
        limits = factory.limits
        if limits.login_timeout and not self.closing:
            self._login_timer = factory.clock.callLater(limits.login_timeout, self._timed_out)

    def _arrived(self) -> None:
        """
        Count the client against its address's limit, once its address is
        known (L{chat.wire.peer.known_at_connect}).
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
        if self.user is None and not self.closing:
            if not self._silent:
                self.log.info("{peer} did not log in in time", peer=self.peer)
            self._bye("login timed out")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = 0
        self.closing = True
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
        if self._on_close is not None:
            d, self._on_close = self._on_close, None
            d.callback(None)

    def shutdown(self, reason: str, reconnect: int = 0) -> Deferred[None]:
        """
        Say BYE and close; fires when the connection is gone.

        @param reconnect: When the server is restarting, in how many
            seconds the client may come back (C{RECONNECT}, before C{BYE}).
        """
        if not self.connected:
            return succeed(None)
        d = self._on_close
        if d is None:
            d = self._on_close = Deferred()
            if reconnect and not self.closing:
                self.send("RECONNECT", str(reconnect))
            self._bye(reason)
        return d

    def _bye(self, reason: str) -> None:
        if self._logout is not None:
            # Leave the room first, so that no line can follow BYE.
            self._log_out()
        self.send("BYE", text=reason)
        self._hang_up()

    def _hang_up(self) -> None:
        """
        Close the connection once what was written has gone out; nothing
        more is read or written.
        """
        self.closing = True
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
        if logout is OWN_LOGOUT:
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
            service = self.factory.service
            room = user.room
            if room is not None and room.pending:
                service.flush_room(room)
            # And this turn's private messages, said before this line.
            service.flush_direct()
        self.deliver(data)

    def deliver(self, data: bytes) -> None:
        """
        Write lines, within the connection's send queue limit: the fast
        path of every room's traffic (see L{chat.wire.direct}).
        """
        if self.closing:
            return
        if not self._sendq.add(len(data)):
            self._overflow()
            return
        if self._direct:
            direct.write(self.transport, data)
        else:
            self.transport.write(data)  # type: ignore[union-attr]

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
        self.closing = True
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
            if not self._refeed or self.closing:
                return
            data, self._refeed = self._refeed, b""

    def _spoke(self) -> None:
        """
        The first bytes: now the connection is worth an info line.
        """
        self._silent = False
        self.log.info("Connection from {peer}", peer=self.peer)
        if not known_at_connect(self.transport):
            # It came in the PROXY header, ahead of these bytes.
            self._arrived()

    def _untelnet(self, data: bytes) -> bytes:
        """
        Answer and remove the telnet commands in C{data} (see L{chat.wire.telnet}).
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
        self._hang_up()

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
        if self.closing:
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
            if _leaves(line):
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
        if state not in TABLE[verb].states:
            raise CommandError(ErrorCode.BAD_STATE, why_not(verb, state))
        args = command.args if command is not None else parse_args(verb, rest)
        self.handlers[verb](self, *args)

    def _not_ready(self, line: str) -> None:
        """
        Before the rooms are loaded (from Redis, which may not answer yet)
        a client is greeted but can do nothing except leave: it is told
        so, rather than left waiting in silence.
        """
        if _leaves(line):
            self.do_quit()
        else:
            self.error(ErrorCode.UNAVAILABLE, "starting up; try again shortly")

    def _bug(self, failure: Failure) -> None:
        self.log.failure("Bug in {peer}'s connection", failure, peer=self.peer)
        self._resume()

    def _resume(self) -> None:
        if not self.closing:
            self.resumeProducing()

    # LOBBY and IN_ROOM: the avatar acts, this only translates

    def _avatar(self) -> ChatUser:
        user = self.user
        assert user is not None
        return user

    def do_rooms(self) -> None:
        self.write(self.factory.listing.render())

    def do_create(self, name: str) -> None:
        self._later(self._avatar().create(name), self._created)

    def _created(self, room: Room) -> bytes:
        return format_line("OK", "create", room.name) + self.encoder.entered(room.name, room.recent)

    def _later(self, d: Deferred[T], answer: Callable[[T], bytes]) -> None:
        """
        Answer once C{d} fires (the store was asked), holding the client's
        next lines back until then, so that answers come in the order of
        the questions.
        """
        self.pauseProducing()

        def done(result: T) -> None:
            if not self.closing:
                data = answer(result)
                if data:
                    self.write(data)
                self.resumeProducing()

        d.addCallbacks(done, self._refused)
        d.addErrback(self._bug)

    def _refused(self, failure: Failure) -> None:
        failure.trap(ChatError)
        if self.closing:
            return
        error: ChatError = failure.value  # type: ignore[assignment]
        self.error(error.code, error.detail)
        self._resume()

    def do_join(self, name: str) -> None:
        room = self._avatar().join(name)
        rules = self.factory.service.room_rules(room.name)
        topic = rules.topic if rules is not None else None
        self.write(self.encoder.entered(room.name, room.recent, topic))

    def do_leave(self) -> None:
        room = self._avatar().leave()
        self.send("OK", "leave", room.name)

    def do_who(self) -> None:
        user = self._avatar()
        names = user.who()
        assert user.room is not None
        self.write(self.encoder.members(user.room.name, names))

    def do_say(self, text: str) -> None:
        """
        Post C{text}, which L{dispatch} has cleaned.
        """
        self._avatar().say(text)

    def do_msg(self, name: str, text: str) -> None:
        self._avatar().message(name, text)

    def do_dms(self) -> None:
        self._later(self._avatar().conversations(), self.encoder.conversations)

    def do_history(self, target: str, before: str, count: str) -> None:
        page = self._avatar().history(target, before, int(count))
        self._later(page, lambda found: self.encoder.page(*found))

    def do_ignore(self, name: str) -> None:
        self._later(self._avatar().ignore(name), lambda other: format_line("OK", "ignore", other))

    def do_unignore(self, name: str) -> None:
        done = self._avatar().unignore(name)
        self._later(done, lambda other: format_line("OK", "unignore", other))

    def do_ignores(self) -> None:
        self._later(self._avatar().ignored(), self.encoder.ignores)

    # Anywhere

    def do_help(self) -> None:
        self.write(HELP)

    def do_quit(self) -> None:
        self._bye("Goodbye")


ChatProtocol.handlers = {
    Verb.REGISTER: ChatProtocol.do_register,
    Verb.LOGIN: ChatProtocol.do_login,
    Verb.RESUME: ChatProtocol.do_resume,
    Verb.TOKEN: ChatProtocol.do_token,
    Verb.PASSWORD: ChatProtocol.do_password,
    Verb.LOGOUT_ALL: ChatProtocol.do_logout_all,
    Verb.DIALOG: ChatProtocol.do_dialog,
    Verb.ROOMS: ChatProtocol.do_rooms,
    Verb.CREATE: ChatProtocol.do_create,
    Verb.JOIN: ChatProtocol.do_join,
    Verb.LEAVE: ChatProtocol.do_leave,
    Verb.WHO: ChatProtocol.do_who,
    Verb.SAY: ChatProtocol.do_say,
    Verb.MSG: ChatProtocol.do_msg,
    Verb.DMS: ChatProtocol.do_dms,
    Verb.HISTORY: ChatProtocol.do_history,
    Verb.IGNORE: ChatProtocol.do_ignore,
    Verb.UNIGNORE: ChatProtocol.do_unignore,
    Verb.IGNORES: ChatProtocol.do_ignores,
    Verb.TOPIC: ChatProtocol.do_topic,
    Verb.OP: ChatProtocol.do_op,
    Verb.DEOP: ChatProtocol.do_deop,
    Verb.OPS: ChatProtocol.do_ops,
    Verb.KICK: ChatProtocol.do_kick,
    Verb.BAN: ChatProtocol.do_ban,
    Verb.UNBAN: ChatProtocol.do_unban,
    Verb.BANS: ChatProtocol.do_bans,
    Verb.MUTE: ChatProtocol.do_mute,
    Verb.UNMUTE: ChatProtocol.do_unmute,
    Verb.DELETE: ChatProtocol.do_delete,
    Verb.LOCK: ChatProtocol.do_lock,
    Verb.UNLOCK: ChatProtocol.do_unlock,
    Verb.WALL: ChatProtocol.do_wall,
    Verb.DROP: ChatProtocol.do_drop,
    Verb.AUDIT: ChatProtocol.do_audit,
    Verb.HELP: ChatProtocol.do_help,
    Verb.QUIT: ChatProtocol.do_quit,
}


def _leaves(line: str) -> bool:
    """
    Whether a line is C{/quit} or C{exit}: what a client may still say
    where every other line is taken as something else (a password) or
    refused (while the server starts).
    """
    return line.strip(" \t").lower() in ("/quit", "exit")


def _typed_password(raw: str, rest: str) -> str:
    """
    The arguments of a C{/login} or C{/register} line whose cleaned C{rest}
    was parsed, with the password as the client typed it in C{raw}: the
    text after the line's second space, when it has one.
    """
    name = rest.partition(" ")[0]
    password = raw.split(" ", 2)[2:]
    return f"{name} {password[0]}" if password and password[0] else rest


class ChatFactory(Factory):
    """
    Builds L{ChatProtocol}s and hands them what they share.

    @ivar accounts: Where C{/register} adds accounts, or L{None} when the
        credentials checker cannot add any (registration closed).
    @ivar limits: The bounds each connection lives within.
    @ivar pending_logins: How many bcrypt jobs are queued or running.
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
        #: The room list as lines, kept up to date by the service.
        self.listing = service.listing(LINES.room_row, END_ROOMS)
        self.registrations = Quota(clock, limits.max_registrations_per_ip)
        self.silent = SilentTally(clock)

    def buildProtocol(self, addr: IAddress | None) -> ChatProtocol:
        return ChatProtocol(self)


if TYPE_CHECKING:
    # The factory is what the login flow takes it for (checked by mypy).
    _as_login_factory: type[LoginFactory] = ChatFactory
