"""
The session: what the user's lines and the server's lines mean at each
point, from the greeting through the login questions to the chat and the
goodbye.  No I/O of its own: the console and the connection feed it.
"""

# test-case-name: tests.client.test_session

from __future__ import annotations

import enum
import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from chat.client.commands import HELP, completions
from chat.client.render import CONTROLS, Renderer, Style, clean
from chat.client.tls import tls_failure
from chat.commands import valid_name
from chat.guard import TokenBucket
from chat.lines import ServerLine, parse_line

if TYPE_CHECKING:
    from chat.client.connection import ServerProtocol
    from chat.client.console import Screen

__all__ = [
    "HELLO_TIMEOUT",
    "HISTORY_WAIT",
    "RECONNECT_CAP",
    "ChatClient",
    "Outcome",
    "Phase",
    "reconnect_delay",
]

#: Seconds to wait for the server's HELLO once connected.
HELLO_TIMEOUT = 10.0

#: At most how many seconds C{/history} alone waits for the history of a
#: room being joined or a conversation being opened (which say where the
#: page starts) when a script sends it right after C{/join} or C{/dm}.
HISTORY_WAIT = 10.0

#: The longest wait, in seconds, between two attempts to reconnect (before
#: the jitter).
RECONNECT_CAP = 30.0

#: The longest wait the server's C{RECONNECT <seconds>} is taken at: a
#: garbled or hostile number must not park the client for a day.
RECONNECT_MOST = 300


def reconnect_delay(attempt: int, suggested: int | None, jitter: float) -> float:
    """
    How long to wait before attempt C{attempt} (0 for the first) to
    reconnect: 1 s, 2 s, 4 s ... at most L{RECONNECT_CAP}, or for the first
    the server's suggestion (C{RECONNECT}); plus a random part, so that the
    clients a restart dropped together do not come back together.

    @param jitter: A random number in [0, 1): the random part is that much
        of a second, or of half the delay once that is longer.
    """
    if attempt == 0 and suggested is not None:
        base = float(suggested)
    else:
        base = min(RECONNECT_CAP, 2.0**attempt)
    return base + jitter * max(1.0, base / 2)


# What the terminal's key handling drops (L{chat.client.console.Screen}): escape
# sequences as a whole, then every other control but TAB.
_TYPED_ESCAPE = re.compile(r"\x1b(?:[\[O][\x20-\x3f]*[\x40-\x7e]?|.?)", re.DOTALL)


def _typed(line: str) -> str:
    """
    A line read from a pipe as it would have been typed on a terminal, so
    that C{\\a/who} is the command C{/who} (and C{\\a/quit} a quit) for the
    client as it is for the server, rather than a message.
    """
    return CONTROLS.sub("", _TYPED_ESCAPE.sub("", line))


class Phase(enum.Enum):
    """
    Where the client is in the session; what a line typed by the user
    means depends on it.
    """

    CONNECTING = "connecting"  # waiting for HELLO
    ASK_MODE = "ask-mode"  # "login or register?"
    ASK_USER = "ask-user"
    ASK_PASSWORD = "ask-password"
    ASK_CONFIRM = "ask-confirm"  # the password again, when registering
    AUTHENTICATING = "authenticating"  # /login or /register sent
    CHAT = "chat"  # logged in: lines go to the server
    PASSWORD_WAIT = "password-wait"  # /password sent: the server's dialog under way
    ASK_CURRENT = "ask-current"  # /password: the current password
    ASK_NEW = "ask-new"  # /password: the new password
    ASK_NEW_CONFIRM = "ask-new-confirm"  # /password: the new one again
    RECONNECTING = "reconnecting"  # the connection dropped: waiting, or connecting again
    RESUMING = "resuming"  # connected again: waiting for HELLO, then /resume sent
    QUITTING = "quitting"  # /quit sent or BYE seen, waiting for the close
    DONE = "done"


_ASKING = {Phase.ASK_MODE, Phase.ASK_USER, Phase.ASK_PASSWORD, Phase.ASK_CONFIRM}

#: The password change's questions, answered by the user's next line.
_CHANGING = {Phase.ASK_CURRENT, Phase.ASK_NEW, Phase.ASK_NEW_CONFIRM}

#: Where no typing is echoed: the passwords, and the wait between them,
#: when what is typed is most likely the next password.
_HIDDEN = {
    Phase.ASK_PASSWORD,
    Phase.ASK_CONFIRM,
    Phase.ASK_CURRENT,
    Phase.ASK_NEW,
    Phase.ASK_NEW_CONFIRM,
}

#: Logged in, and the connection may drop under us: where a lost connection
#: is reconnected (on a terminal, with a token).
_LOGGED_IN = {Phase.CHAT, Phase.PASSWORD_WAIT, *_CHANGING}

#: The C{OK <verb> <user>} answers that name a user, for Tab.
_NAMING_OKS = ("ignore", "unignore", "lock", "unlock")

#: The moderation lines C{<TAG> <room> <ts> <by> [<user>]}: who acted, and on
#: whom, are names for Tab.
_MODERATION = ("TOPIC", "OP", "DEOP", "KICK", "BAN", "UNBAN", "MUTE", "UNMUTE", "DELETE")

#: How many messages of each room the client remembers (their stamps and
#: senders, not their text) for C{/delete <time>}.
SEEN_PER_ROOM = 500

#: A time as the client shows it: C{14:02:05}, or C{2026-12-01 14:02:05}.
_SHOWN_TIME = re.compile(r"(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\Z")

#: Login refusals that asking again cannot mend: the session ends, on a
#: terminal as in a script.
_FINAL_REFUSALS = ("locked",)


@dataclass(frozen=True)
class Outcome:
    """
    How a session ended: the exit status and, for a failure, the one line
    to print on stderr.
    """

    code: int
    reason: str | None = None


class ChatClient:
    """
    The client's logic, between the console (lines the user types) and the
    server connection (lines the server sends), with no I/O of its own.

    User lines are queued and handled in order: the first ones answer the
    login questions, the rest are sent to the server once the login has
    succeeded (so a script can be written ahead of the replies).

    After C{/dm <user>} the lines typed are private messages to that user
    (sent as C{/msg <user> <line>}) until C{/room}, C{/join} or
    C{/create}; C{/history} alone pages back through the room or the
    conversation the lines go to.

    On a terminal, once logged in, the client asks the server for a
    session token (C{/token}), which it keeps in memory only (never shown,
    never written anywhere).  When the connection drops without a C{/quit}
    (a server restart, which says C{RECONNECT <seconds>} before its C{BYE},
    or the network), it says so on one line and reconnects by itself, with
    backoff and jitter (L{reconnect_delay}); the prompt line says where it
    is meanwhile.  Once connected it resumes the session with the token
    (C{/resume}), rejoins the room it was in (whose history shows what was
    missed) and asks for a fresh token.  A token refused (revoked, expired)
    sends it back to asking for the password.  From a pipe it never
    reconnects: a script wants its exit status.

    @ivar finished: Fires with an L{Outcome} when the session is over.
    """

    def __init__(
        self,
        screen: Screen,
        renderer: Renderer,
        clock: IReactorTime,
        *,
        interactive: bool,
        user: str | None = None,
        address: str = "the server",
        connect: Callable[[], Deferred[Any]] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """
        @param connect: Opens a new connection to the server for this
            client (whose protocol calls L{server_connected}); fires once
            connected, fails when the server cannot be reached.  Without
            it (or from a pipe) a lost connection ends the session.
        @param jitter: A random number in [0, 1), for L{reconnect_delay}.
        """
        self.screen = screen
        self.renderer = renderer
        self.style = renderer.style
        self.clock = clock
        self.interactive = interactive
        self.address = address
        self.phase = Phase.CONNECTING
        self.finished: Deferred[Outcome] = Deferred()
        self._given_user = user
        self._username = user or ""
        self._password = ""
        self._mode = "login"
        self._pending: deque[str] = deque()
        self._eof = False
        self._server: ServerProtocol | None = None
        # A little under the server's flood limit (10 lines a second, bursts
        # of 20): lines that leave spaced out can still arrive together.
        self._pacer = TokenBucket(clock, rate=8.0, burst=16)
        self._wakeup: IDelayedCall | None = None
        self._hello_timer: IDelayedCall | None = None
        self._quit_sent = False
        self._bye: str | None = None
        self._hinted: set[str] = set()
        self._help_wanted = 0
        #: The rooms Tab completes: the last room list, and rooms joined since.
        self.rooms: set[str] = set()
        self._listing: list[str] = []
        #: The users Tab completes, by their names in lower case: everyone
        #: the client has seen named (members, senders, partners, ignores).
        self.users: dict[str, str] = {}
        #: Who typed lines go to after C{/dm}; L{None}: the room (or lobby).
        self.talking_to: str | None = None
        # The partner of the conversation /dm opened, in lower case, until
        # the server answers its history (or says there is no such user).
        self._opening: str | None = None
        # The oldest timestamp seen of each room and conversation (C{@user}),
        # in lower case: where the next /history page starts.
        self._oldest: dict[str, str] = {}
        # The stamps and senders of the messages shown of each room, by the
        # room's name in lower case: /delete takes the time shown.
        self._seen: dict[str, deque[tuple[str, str]]] = {}
        # Who sent the last private message received, for the hint.
        self._last_from = ""
        # The rooms being joined and conversations being opened (C{@user}),
        # in lower case, whose history has not come yet; /history alone
        # waits for them (at most HISTORY_WAIT seconds).
        self._awaited: set[str] = set()
        self._history_timer: IDelayedCall | None = None
        self._connect = connect
        self._jitter = jitter
        # The session token, in memory only; None before the first one.
        self._token: str | None = None
        # The server's RECONNECT on this connection, if it said one.
        self._suggested: int | None = None
        # Reconnecting: attempts failed so far, the next one's timer, what
        # the prompt line says, the room to rejoin, whether the connection
        # said HELLO, and whether the resumed login's room list is to hide.
        self._attempt = 0
        self._retry: IDelayedCall | None = None
        self._why_lost = ""
        #: What the status line says while reconnecting (without its
        #: style); empty otherwise.
        self.status = ""
        self._rejoin: str | None = None
        self._greeted = False
        self._aborted: str | None = None
        self._quiet_rooms = False
        # Whether the user was told, in this outage, that Enter waits.
        self._held_told = False
        # /password: the passwords typed, until the server asks for them.
        self._current_password = ""
        self._new_password = ""

    # --- the server side -------------------------------------------------

    def server_connected(self, server: ServerProtocol) -> None:
        """
        The TCP connection is up; the questions wait for the server's HELLO,
        which a chatroom server sends at once.  A server that says nothing
        (a TLS port reached without --tls, say) would otherwise leave the
        user waiting forever.
        """
        self._server = server
        if self.phase is Phase.DONE:
            # An attempt to reconnect that outlived the session.
            self._abort("the session is over")
            return
        self._greeted = False
        self._suggested = None
        if self.phase is Phase.RECONNECTING:
            self._set_phase(Phase.RESUMING)
        self._hello_timer = self.clock.callLater(HELLO_TIMEOUT, self._no_hello)

    def _no_hello(self) -> None:
        self._hello_timer = None
        if self.phase is Phase.RESUMING and not self._greeted:
            # Dropped, which counts as one more failed attempt.
            self._abort("no greeting")
        elif self.phase is Phase.CONNECTING:
            self._finish(
                1,
                f"{self.address} sent no greeting in {HELLO_TIMEOUT:g} s (a TLS port? try --tls)",
            )

    def connect_failed(self, reason: str) -> None:
        """
        The server could not be reached at all.
        """
        self._finish(1, f"cannot connect to {self.address}: {reason}")

    def server_line(self, raw: bytes) -> None:
        """
        Show one line from the server, then act on it.
        """
        if self.phase is Phase.DONE:
            return
        try:
            line: ServerLine | None = parse_line(raw)
        except ValueError:
            line = None
        if self.phase is Phase.CONNECTING and (
            line is None or line.tag != "HELLO" or line.args[:1] != ("chatroom",)
        ):
            self._finish(1, f"{self.address} is not a chatroom server")
            return
        if self.phase is Phase.RESUMING:
            self._resuming(line)
            self._pump()
            return
        if line is None:
            self.screen.show(self.renderer.unknown(raw.decode("utf-8", "replace")))
            return
        if self._private_line(line):
            self._pump()
            return
        if self._help_wanted and line.tag == "INFO":
            return
        if self._help_wanted and line.tag == "END" and line.args[:1] == ("help",):
            self._help_wanted -= 1
            self._show_help()
            return
        texts = self.renderer.render(line)
        if self._quiet_rooms and line.tag in ("ROOM", "END"):
            # The room list of a resumed session: seen before the drop.
            self._quiet_rooms = line.tag == "ROOM"
            texts = []
        for text in texts:
            self.screen.show(text)
        self._note(line)
        if self._awaited:
            self._settle(line)
        if line.tag == "HELLO" and self.phase is Phase.CONNECTING:
            self._cancel_hello_timer()
            self._ask(Phase.ASK_MODE)
        elif line.tag == "OK":
            self._on_ok(line)
        elif line.tag == "ROOM" and line.args:
            self._listing.append(line.args[0])
        elif line.tag == "ERR" and self.phase is Phase.AUTHENTICATING:
            self._on_login_refused(line)
        elif line.tag == "END" and line.args[:1] == ("rooms",):
            self.rooms, self._listing = set(self._listing), []
            if self.renderer.room is None and self._rejoin is None:
                self._hint(
                    "lobby",
                    'type a room name to join it, "create <room>" to make one, /help for all '
                    "commands",
                )
        elif line.tag == "END" and line.args[:1] == ("history",):
            self._on_history(line.args[1] if len(line.args) > 1 else "")
        elif line.tag == "ERR" and self._opening is not None:
            self._on_opening_refused(line)
        elif line.tag == "DM" and len(line.args) > 2 and not self._is_me(line.args[2]):
            # After the replay of missed ones rather than inside it, and
            # not to someone already talking with the sender.
            self._last_from = line.args[0]
            talking = (self.talking_to or "").lower() == self._last_from.lower()
            if not (self.renderer.replaying or talking):
                self._hint_answer()
        elif line.tag == "END" and line.args[:1] == ("unread",) and self._last_from:
            self._hint_answer()
        elif line.tag in ("KICK", "BAN", "DROPPED"):
            self._on_removal(line)
        elif line.tag == "BYE":
            self._bye = line.text or ""
            self._set_phase(Phase.QUITTING)
        self._pump()

    def _private_line(self, line: ServerLine) -> bool:
        """
        Handle the lines that are the client's business rather than the
        user's: the session token (never shown), the restart's
        C{RECONNECT} and the C{BYE} after it, and the password dialog's
        prompts and outcome.

        @return: Whether C{line} was one of them.
        """
        tag, args = line.tag, line.args
        if tag == "OK" and args[:1] == ("token",):
            if len(args) > 1:
                self._token = args[1]
            return True
        if tag == "RECONNECT":
            if args and args[0].isdigit() and int(args[0]) <= RECONNECT_MOST:
                self._suggested = int(args[0])
            return True
        if tag == "BYE" and self._suggested is not None and self._can_reconnect():
            # Said on the one status line when the connection closes.
            self._bye = line.text or ""
            return True
        if self.phase is Phase.PASSWORD_WAIT and self._changing(line):
            return True
        if tag == "OK" and args[:1] == ("logout-all",):
            keeps = self.interactive and self._connect is not None
            said = "; this client keeps a new one" if keeps else ""
            self.screen.show(self.renderer.system(f"all session tokens revoked{said}"))
            self._ask_token()
            return True
        return False

    def _changing(self, line: ServerLine) -> bool:
        """
        The server's password dialog, answered with the passwords the user
        gave before C{/password} was sent: each only when the server asks
        for it, so that after a refusal no password can go out as a chat
        line.

        @return: Whether C{line} was the dialog's.
        """
        tag, args = line.tag, line.args
        if tag == "PROMPT" and args[:1] == ("password",):
            if (line.text or "").lower().startswith("new"):
                answer, self._new_password = self._new_password, ""
            else:
                answer, self._current_password = self._current_password, ""
            self._send(answer)
        elif tag == "OK" and args[:1] == ("password",):
            self._end_password_dialog()
            self.screen.show(self.renderer.system("password changed"))
            # The change revoked every token, ours too.
            self._ask_token()
        elif tag == "ERR":
            for text in self.renderer.render(line):
                self.screen.show(text)
            self._end_password_dialog()
        else:
            return False
        return True

    def _end_password_dialog(self) -> None:
        self._current_password = self._new_password = ""
        self._set_phase(Phase.CHAT)

    def _ask_token(self) -> None:
        """
        Ask for a session token, to resume with after a drop: on a
        terminal only, which alone reconnects.
        """
        if self.interactive and self._connect is not None:
            self._send("/token")

    def _can_reconnect(self) -> bool:
        return (
            self.interactive
            and self._connect is not None
            and self._token is not None
            and not self._quit_sent
        )

    def _resuming(self, line: ServerLine | None) -> None:
        """
        A line on a new connection, before the session is resumed: the
        greeting, then the answer to C{/resume}.  The room list is that of
        a login, hidden (the user saw it); any private messages missed come
        after it and are shown.
        """
        if not self._greeted:
            if line is None or line.tag != "HELLO" or line.args[:1] != ("chatroom",):
                self._abort("not a chatroom server")
                return
            self._greeted = True
            self._cancel_hello_timer()
            self._send(f"/resume {self._username} {self._token}")
            return
        if line is None:
            return
        if line.tag == "OK" and line.args[:1] == ("login",):
            self.renderer.render(line)
            self.renderer.me = line.args[1] if len(line.args) > 1 else self._username
            self.renderer.room = None
            self._attempt = 0
            self._quiet_rooms = True
            self._back_online()
            self._set_phase(Phase.CHAT)
            self._tell(f"reconnected as {clean(self.renderer.me)}")
            self._ask_token()
            self._back()
        elif line.tag == "ERR":
            self._on_resume_refused(line)
        elif line.tag == "BYE":
            # Too many connections, say: one more failed attempt.
            self._bye = None
        else:
            for text in self.renderer.render(line):
                self.screen.show(text)

    def _back(self) -> None:
        """
        Logged in again after a drop: back to the room the user was in,
        whose history shows what was missed.
        """
        room, self._rejoin = self._rejoin, None
        if room is None:
            return
        self._awaited.add(room.lower())
        self.renderer.expect_rejoin(room)
        self._send(f"/join {room}")

    def _on_resume_refused(self, line: ServerLine) -> None:
        """
        C{/resume} refused.  A token refused (revoked by a password change,
        C{/logout-all} or a lock; or expired): ask for the password, as at
        the start.  A locked account ends the session as a locked login
        does.  Anything else (a server still starting, C{unavailable}) is
        one more failed attempt.
        """
        code = line.args[0] if line.args else "error"
        said = f"{clean(line.text)} " if line.text else ""
        if code == "bad-credentials":
            self._back_online()
            self._token = None
            self._complain(f"could not resume the session: {said}({code})")
            self._mode = "login"
            self._set_phase(Phase.ASK_PASSWORD)
        elif code in _FINAL_REFUSALS:
            for text in self.renderer.render(line):
                self.screen.show(text)
            self._finish(1, f"login refused: {said}({clean(code)})")
        else:
            self._abort(clean(code))

    def server_lost(self, reason: Failure) -> None:
        """
        The connection closed: the normal end after our C{/quit}, a failure
        otherwise.
        """
        self._server = None
        if self.phase is Phase.DONE:
            return
        self._cancel_hello_timer()
        tls_problem = tls_failure(reason)
        if tls_problem is None and self._reconnects(reason):
            return
        if self.phase in (Phase.CONNECTING, Phase.RESUMING) and tls_problem is not None:
            self._finish(1, f"cannot connect to {self.address}: {tls_problem}")
        elif self._quit_sent:
            self._finish(0)
        elif self._bye is not None:
            said = f": {clean(self._bye)}" if self._bye else ""
            self._finish(1, f"the server ended the session{said}")
        elif reason.check(ConnectionDone):
            self._finish(1, f"{self.address} closed the connection")
        else:
            message = " ".join(reason.getErrorMessage().split())
            self._finish(1, f"lost the connection to {self.address}: {message}")

    def _reconnects(self, reason: Failure) -> bool:
        """
        Start reconnecting, or go on, if the lost connection calls for it:
        on a terminal, with a token, when the user did not quit and the
        server did not end the session on purpose (a C{BYE} without
        C{RECONNECT}: an idle timeout, a lock).

        @return: Whether the client is reconnecting.
        """
        if self.phase in (Phase.RESUMING, Phase.RECONNECTING):
            why, self._aborted = self._aborted or self._why(reason), None
            self._attempt += 1
            self._schedule(f"connection lost ({why})")
            return True
        restart = self._suggested is not None
        if not self._can_reconnect() or (self._bye is not None and not restart):
            return False
        if self.phase not in _LOGGED_IN:
            return False
        why = clean(self._bye) if restart and self._bye else "connection lost"
        self._drop_state()
        self._attempt = 0
        self._schedule(why)
        return True

    @staticmethod
    def _why(reason: Failure) -> str:
        """
        What went wrong, in a few words: it goes on the status line.
        """
        short = {
            ConnectionDone: "closed",
            ConnectionLost: "lost",
            ConnectionRefusedError: "connection refused",
            TCPTimedOutError: "timed out",
            TimeoutError: "timed out",
            DNSLookupError: "host not found",
        }
        for error, words in short.items():
            if reason.check(error):
                return words
        return " ".join(reason.getErrorMessage().split()) or "lost"

    def _drop_state(self) -> None:
        """
        Forget what was under way on the lost connection: lines waiting to
        be sent (they would land in a conversation the user can no longer
        follow), awaited histories, a password dialog.
        """
        self._rejoin = self.renderer.room
        self._held_told = False
        self._bye = None
        self._help_wanted = 0
        self._opening = None
        self._current_password = self._new_password = ""
        self._awaited.clear()
        self._stop_history_timer()
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        if self._pending:
            self._pending.clear()
            self._complain("the lines typed but not sent yet were dropped")
        self.renderer.reset()

    def _schedule(self, why: str) -> None:
        """
        Wait before the next attempt, and say so on the status line, which
        each attempt rewrites rather than add a line of its own.
        """
        delay = reconnect_delay(self._attempt, self._suggested, self._jitter())
        self._suggested = None
        self._why_lost = why
        self._set_phase(Phase.RECONNECTING)
        self._show_status(f"reconnecting in {delay:.0f} s")
        self._retry = self.clock.callLater(delay, self._try_again)

    def _show_status(self, doing: str) -> None:
        tries = f" (try {self._attempt + 1})" if self._attempt else ""
        status = f"{self._why_lost}; {doing}{tries}"
        self.status = status
        self.screen.set_status(self.renderer.system(status))

    def _try_again(self) -> None:
        self._retry = None
        if self.phase is not Phase.RECONNECTING or self._connect is None:
            return
        self._show_status("connecting")
        self._connect().addErrback(self._unreachable)

    def _unreachable(self, reason: Failure) -> None:
        if self.phase is Phase.RECONNECTING:
            self._attempt += 1
            self._schedule(f"connection lost ({self._why(reason)})")

    def _abort(self, why: str) -> None:
        """
        Drop a new connection that is not what it should be; the close
        counts as a failed attempt.
        """
        self._aborted = why
        server = self._server
        if server is not None and server.transport is not None:
            abort = getattr(server.transport, "abortConnection", server.transport.loseConnection)
            abort()

    def _back_online(self) -> None:
        """
        The status line goes: the client is back, or asks for a password.
        """
        self.status = ""
        self.screen.set_status("")

    def _note(self, line: ServerLine) -> None:
        """
        Remember the user names a line holds (for Tab) and the oldest
        message it shows of a room or conversation (for C{/history}).
        """
        tag, args = line.tag, line.args
        names: tuple[str, ...] = ()
        target = stamp = None
        if tag in ("MEMBER", "CONVERSATION", "IGNORED") and args:
            names = args[1:2] if tag == "MEMBER" else args[:1]
        elif tag in ("JOIN", "PART") and len(args) > 2:
            names = args[2:3]
        elif tag == "OK" and len(args) > 1 and args[0].lower() in _NAMING_OKS:
            names = args[1:2]
        elif tag in _MODERATION and len(args) > 2:
            names = args[2:4]
        elif tag == "OPERATOR" and len(args) > 1:
            names = args[1:2]
        elif tag == "BANNED" and len(args) > 3:
            names = (args[1], args[3])
        elif tag == "AUDIT" and len(args) > 4:
            names = (args[1], args[4])
        elif tag == "NOTICE" and len(args) > 1:
            names = args[1:2]
        elif tag in ("MSG", "HISTORY", "DM") and len(args) > 2:
            target, stamp = args[0], args[1]
            if tag == "DM":
                target = "@" + target
            partner = target[1:] if target.startswith("@") else None
            names = (args[2],) if partner is None else (partner, args[2])
        for name in names:
            # An audit entry's "-" is no one, though it is a valid name.
            if valid_name(name) and name != "-":
                self.users[name.lower()] = name
        if tag == "DELETE" and len(args) > 1:
            self._forget(args[0], args[1])
        if target is not None and stamp is not None:
            key = target.lower()
            if not target.startswith("@"):
                seen = self._seen.setdefault(key, deque(maxlen=SEEN_PER_ROOM))
                if (stamp, args[2]) not in seen:
                    seen.append((stamp, args[2]))
            if key not in self._oldest or stamp < self._oldest[key]:
                self._oldest[key] = stamp

    def _on_removal(self, line: ServerLine) -> None:
        """
        Kicked or banned from our room, or the room dropped: the server has
        put us in the lobby without a C{PART} or an C{OK leave}, so the
        prompt, Tab and what a bare word means follow it there.  A dropped
        room is gone for Tab too.
        """
        args = line.args
        if not args:
            return
        room = args[0]
        if line.tag == "DROPPED":
            self.rooms = {name for name in self.rooms if name.lower() != room.lower()}
            ours = True
        else:
            ours = len(args) > 3 and self._is_me(args[3])
        here = self.renderer.room
        if ours and here is not None and here.lower() == room.lower():
            self.renderer.room = None
            self._awaited.discard(room.lower())
            if not self._awaited:
                self._stop_history_timer()
            self._update_prompt()

    def _forget(self, room: str, stamp: str) -> None:
        seen = self._seen.get(room.lower())
        if seen is not None:
            for item in [item for item in seen if item[0] == stamp]:
                seen.remove(item)

    def _settle(self, line: ServerLine) -> None:
        """
        A history awaited has come; or an error, perhaps the awaited
        join's or opening's, after which it never comes.
        """
        if line.tag == "ERR":
            self._awaited.clear()
        elif line.tag == "END" and line.args[:1] == ("history",) and len(line.args) > 1:
            self._awaited.discard(line.args[1].lower())
        if not self._awaited:
            self._stop_history_timer()

    def _stop_history_timer(self) -> None:
        if self._history_timer is not None and self._history_timer.active():
            self._history_timer.cancel()
        self._history_timer = None

    def _hint_answer(self) -> None:
        partner = clean(self._last_from)
        self._hint("dm", f"answer with /msg {partner} <text>, or /dm {partner} to talk")

    def _is_me(self, name: str) -> bool:
        me = self.renderer.me
        return me is not None and name.lower() == me.lower()

    def _on_history(self, target: str) -> None:
        """
        A history block ended: the hint after joining a room, or the answer
        to the history C{/dm} asked for, which says the user exists and how
        the name is spelled.
        """
        partner = target[1:] if target.startswith("@") else None
        if partner is None:
            if target == self.renderer.room:
                self._hint("room", "type to chat; /leave goes back to the lobby, exit quits")
        elif partner.lower() == self._opening:
            self._opening = None
            if self.talking_to is not None and self.talking_to.lower() == partner.lower():
                self.talking_to = partner
                self._update_prompt()

    def _on_opening_refused(self, line: ServerLine) -> None:
        """
        The server refused the history C{/dm} asked for: an error for a
        user that does not exist ends the conversation just begun, so that
        what is typed next is not lost on a name nobody has.
        """
        code = line.args[0] if line.args else ""
        if code == "unknown-command":
            # A server without private messages: nothing more will come.
            self._opening = None
        elif code in ("no-such-user", "bad-name"):
            self._opening = None
            self._stop_talking()

    def _on_ok(self, line: ServerLine) -> None:
        command = line.args[0].lower() if line.args else ""
        name = line.args[1] if len(line.args) > 1 else None
        if command in ("login", "register") and self.phase is Phase.AUTHENTICATING:
            self.renderer.me = name or self._username
            self.renderer.room = None
            self._username = name or self._username
            self._set_phase(Phase.CHAT)
            self._ask_token()
            if self._rejoin is not None:
                self._back()
        elif command == "join" and name is not None:
            self.renderer.room = name
            self.rooms.add(name)
            # Joining shows the last messages again: paging starts there.
            self._oldest.pop(name.lower(), None)
            self._update_prompt()
        elif command == "leave":
            self.renderer.room = None
            self._update_prompt()

    def _on_login_refused(self, line: ServerLine) -> None:
        """
        On a terminal, ask again what was refused, as the server's guided
        dialog does: a refused registration password is asked for again
        (twice) rather than sending the user back to "login or register?",
        which echoes, where the next attempt would show in clear.  A
        locked account ends the session as a refused login in a script
        does: the right password was given, and asking for it again would
        only be refused again.
        """
        code = line.args[0] if line.args else "error"
        if self.interactive and code not in _FINAL_REFUSALS:
            if self._mode == "register" and code == "weak-password":
                self._ask(Phase.ASK_PASSWORD)
            elif self._mode == "register" and code in ("name-taken", "bad-name"):
                self._ask(Phase.ASK_USER if self._given_user is None else Phase.ASK_MODE)
            else:
                self._ask(Phase.ASK_MODE)
            return
        said = f"{clean(line.text)} " if line.text else ""
        what = "registration" if self._mode == "register" else "login"
        self._finish(1, f"{what} refused: {said}({clean(code)})")

    # --- the user side ---------------------------------------------------

    def user_line(self, line: str) -> None:
        """
        The user typed a line (or the script gave one).
        """
        if self.phase in (Phase.QUITTING, Phase.DONE):
            return
        self._pending.append(line)
        self._pump()

    def holds(self, line: str) -> bool:
        """
        Whether Enter leaves C{line} on the input line rather than hand it
        over: while disconnected, where it could not be sent.  It is not
        kept for later either: by then it might land in a conversation
        that has moved on; the user sends it, or not, once back.  C{exit}
        and C{/quit} go through, and quit.
        """
        if self.phase not in (Phase.RECONNECTING, Phase.RESUMING):
            return False
        stripped = _typed(line).strip()
        if not stripped or stripped == "exit" or stripped.lower() == "/quit":
            return False
        if not self._held_told:
            self._held_told = True
            self._complain("not connected: Enter sends the line once the client is back")
        return True

    def completions(self, before: str) -> list[str]:
        """
        What Tab may complete, C{before} being the input line up to the
        cursor: the answers to "login or register?", then commands, and
        room names where a room is expected.
        """
        if self.phase not in (Phase.ASK_MODE, Phase.CHAT):
            return []
        return completions(
            before,
            asking_mode=self.phase is Phase.ASK_MODE,
            in_lobby=self.renderer.room is None,
            rooms=self.rooms,
            users=self.users.values(),
            talking=self.talking_to is not None,
        )

    def user_eof(self) -> None:
        """
        Standard input ended (or Ctrl-D on an empty line): finish what was
        typed, then quit.
        """
        self._eof = True
        self._pump()

    def output_lost(self) -> None:
        """
        Nobody reads our output any more (e.g. C{| head}): stop quietly.
        """
        self._finish(0)

    # --- internals -------------------------------------------------------

    def _send(self, line: str) -> None:
        if self._server is not None:
            self._server.sendLine(line.encode("utf-8"))

    def _prompt_text(self) -> str:
        if self.phase is Phase.ASK_MODE:
            return "login or register? "
        if self.phase is Phase.ASK_USER:
            return "username: "
        if self.phase is Phase.ASK_PASSWORD:
            return "password: "
        if self.phase is Phase.ASK_CONFIRM:
            return "password again: "
        if self.phase is Phase.ASK_CURRENT:
            return "current password: "
        if self.phase is Phase.ASK_NEW:
            return "new password: "
        if self.phase is Phase.ASK_NEW_CONFIRM:
            return "new password again: "
        if self.phase in (Phase.RECONNECTING, Phase.RESUMING):
            return f"{self.renderer.room or 'lobby'}> "
        if self.phase is Phase.CHAT and self.talking_to is not None:
            return f"to {self.talking_to}> "
        if self.phase is Phase.CHAT:
            return f"{self.renderer.room or 'lobby'}> "
        return ""

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self._update_prompt()

    def _update_prompt(self) -> None:
        echo = self.phase not in _HIDDEN
        # A line typed while reconnecting is not sent, but Up brings it back.
        self.screen.remember = self.phase in (Phase.CHAT, Phase.RECONNECTING, Phase.RESUMING)
        self.screen.set_prompt(self.style(self._prompt_text(), Style.BOLD), echo=echo)

    def _ask(self, phase: Phase) -> None:
        if phase is Phase.ASK_USER and self._given_user is not None:
            phase = Phase.ASK_PASSWORD
        self._set_phase(phase)

    def _echo(self, text: str) -> None:
        """
        Leave what the user answered or commanded visible, as a shell does.
        """
        if self.interactive:
            self.screen.show(self.style(self._prompt_text(), Style.BOLD) + text)

    def _show_help(self) -> None:
        for text in HELP.splitlines():
            self.screen.show(self.renderer.system(text))

    def _complain(self, text: str) -> None:
        self.screen.show(self.renderer.error(text))

    def _tell(self, text: str) -> None:
        """
        Say what a command of the client's own did, to people only: in a
        script it would come before the replies to the lines sent before.
        """
        if self.interactive:
            self.screen.show(self.renderer.system(text))

    def _hint(self, key: str, text: str) -> None:
        """
        Say what to do next, once per kind of situation, to people only.
        """
        if self.interactive and key not in self._hinted and self.phase is Phase.CHAT:
            self._hinted.add(key)
            self.screen.show(self.renderer.system(text))

    def _pump(self) -> None:
        """
        Handle queued user lines for as long as the phase allows.
        """
        while self._pending and self.phase is not Phase.DONE:
            if self.phase in _ASKING:
                self._answer(self._pending.popleft())
            elif self.phase in _CHANGING:
                self._answer_change(self._pending.popleft())
            elif self.phase in (Phase.RECONNECTING, Phase.RESUMING):
                self._offline(self._pending.popleft())
            elif self.phase is Phase.CHAT:
                if self._wakeup is not None or self._history_timer is not None:
                    return
                if self._awaited and _typed(self._pending[0]).split() == ["/history"]:
                    self._history_timer = self.clock.callLater(HISTORY_WAIT, self._waited)
                    return
                if self._pending[0].strip():
                    if not self._pacer.take():
                        self._wakeup = self.clock.callLater(self._pacer.delay(), self._wake)
                        return
                self._command(self._pending.popleft())
            elif self.phase is Phase.QUITTING:
                self._pending.clear()
            else:
                return
        if self._eof and not self._pending:
            self._input_done()

    def _waited(self) -> None:
        self._history_timer = None
        self._awaited.clear()
        self._pump()

    def _wake(self) -> None:
        self._wakeup = None
        self._pump()

    def _input_done(self) -> None:
        if self.phase in (Phase.RECONNECTING, Phase.RESUMING):
            self._finish(0)
        elif self.phase in _CHANGING:
            # Nothing was sent yet: no change, and the end of the session.
            self._end_password_dialog()
            self._quit()
        elif self.phase is Phase.CHAT or (self.phase in _ASKING and self.interactive):
            self._quit()
        elif self.phase in _ASKING:
            self._finish(1, "standard input ended before the login was complete")

    def _quit(self) -> None:
        self._send("/quit")
        self._quit_sent = True
        self._set_phase(Phase.QUITTING)

    def _answer(self, line: str) -> None:
        """
        Take C{line} as the answer to the question being asked.
        """
        phase = self.phase
        if phase is Phase.ASK_MODE:
            self._answer_mode(line)
        elif phase is Phase.ASK_USER:
            name = line.strip()
            self._echo(name)
            if not name or re.search(r"\s", name):
                self._refuse("a username is one word")
                return
            self._username = name
            self._ask(Phase.ASK_PASSWORD)
        elif phase is Phase.ASK_PASSWORD:
            self._echo("")
            if not line:
                self._refuse("the password is empty")
            elif self._mode == "register" and self.interactive:
                self._password = line
                self._set_phase(Phase.ASK_CONFIRM)
            else:
                self._authenticate(line)
        elif phase is Phase.ASK_CONFIRM:
            self._echo("")
            if line != self._password:
                self._password = ""
                self._complain("the two passwords differ; try again")
                self._set_phase(Phase.ASK_PASSWORD)
            else:
                self._authenticate(line)

    def _offline(self, line: str) -> None:
        """
        A line typed while the connection is down: not sent, and not kept
        for later either (by then it might land in a room the user no
        longer follows, or be a command that no longer makes sense); Up
        brings it back to send again.  C{exit} and C{/quit} end the session.
        """
        stripped = _typed(line).strip()
        if not stripped:
            return
        if stripped == "exit" or stripped.lower() == "/quit":
            self._echo(stripped)
            self._finish(0)
            return
        self._complain("not connected: that line was not sent (Up brings it back)")

    def _answer_change(self, line: str) -> None:
        """
        Take C{line} as the answer to a question of the password change:
        the current password, then the new one (twice on a terminal, since
        it is typed blind, as at registration).  Nothing is sent before
        all are in; an empty current password cancels.
        """
        phase = self.phase
        self._echo("")
        if phase is Phase.ASK_CURRENT:
            if not line:
                self._end_password_dialog()
                self._tell("password change cancelled")
                return
            self._current_password = line
            self._set_phase(Phase.ASK_NEW)
        elif phase is Phase.ASK_NEW:
            if not line and self.interactive:
                self._complain("the password is empty")
                self.screen.redraw()
                return
            if not line:
                self._end_password_dialog()
                self._complain("the new password is empty; nothing changed")
                return
            self._new_password = line
            if self.interactive:
                self._set_phase(Phase.ASK_NEW_CONFIRM)
            else:
                self._start_change()
        elif phase is Phase.ASK_NEW_CONFIRM:
            if line != self._new_password:
                self._end_password_dialog()
                self._complain("the new passwords differ; nothing changed")
                return
            self._start_change()

    def _start_change(self) -> None:
        """
        All the answers are in: start the server's dialog (L{_changing}),
        and hold what is typed meanwhile, which the server would take for
        a password.
        """
        self._send("/password")
        self._set_phase(Phase.PASSWORD_WAIT)

    def _answer_mode(self, line: str) -> None:
        word = line.strip()
        lowered = word.lower()
        verb = lowered.split(" ", 1)[0]
        if verb in ("/login", "/register") and " " in word:
            # An explicit command is passed through; echo it without the
            # password.
            self._echo(" ".join(word.split(" ")[:2]))
            self._mode = verb[1:]
            self._username = word.split(" ")[1]
            self._send(line)
            self._set_phase(Phase.AUTHENTICATING)
            return
        self._echo(word)
        if not word:
            self.screen.redraw()
        elif lowered in ("login", "l", "register", "r"):
            self._mode = "register" if lowered.startswith("r") else "login"
            self._ask(Phase.ASK_USER)
        elif lowered in ("exit", "/quit"):
            self._quit()
        elif lowered == "/help":
            self._show_help()
            self.screen.redraw()
        else:
            self._refuse('please answer "login" or "register"')

    def _refuse(self, problem: str) -> None:
        """
        A bad answer: ask again on a terminal, give up in a script (whose
        next lines would all be answers to the wrong questions).
        """
        if self.interactive:
            self._complain(problem)
            self.screen.redraw()
        else:
            self._finish(1, f"bad login input: {problem}")

    def _authenticate(self, password: str) -> None:
        self._password = ""
        self._set_phase(Phase.AUTHENTICATING)
        self._send(f"/{self._mode} {self._username} {password}")

    def _command(self, line: str) -> None:
        """
        Send a line typed after the login, except what the client itself
        answers (C{/help}).  Control characters are dropped first: what the
        line is depends on what is left.
        """
        line = _typed(line)
        stripped = line.strip()
        if not stripped:
            return
        words = stripped.split()
        verb = words[0].lower()
        quits = (verb == "/quit" and len(words) == 1) or stripped == "exit"
        text = not quits and (not verb.startswith("/") or verb.startswith("//"))
        is_message = text and (self.renderer.room is not None or self.talking_to is not None)
        # A private message comes back as the sender's copy, as a room's does.
        private = verb == "/msg" and len(words) > 2
        if not (is_message or private):
            # The server's MSG or DM shows a message again, with its time;
            # anything else stays on screen as typed.
            self._echo(line)
        if self._local_command(verb, words):
            return
        if text and self.talking_to is not None:
            self._send(f"/msg {self.talking_to} {line[1:] if line.startswith('//') else line}")
            return
        self._await_join(verb, words, quits)
        if verb in ("/join", "/create") and self.talking_to is not None:
            self._stop_talking(announce=False)
        if verb == "/help" and len(words) == 1:
            # Shown when the server's END help arrives, so that in a script
            # it comes after the replies to the lines sent before it.
            self._help_wanted += 1
            self._send("/help")
            return
        self._send(line)
        if quits:
            # The server answers BYE and closes; later input is moot.
            self._quit_sent = True
            self._set_phase(Phase.QUITTING)

    def _await_join(self, verb: str, words: list[str], quits: bool) -> None:
        """
        Note a room about to be joined (C{/join}, C{/create}, and the
        lobby's shorthands), whose history C{/history} alone waits for.
        """
        if verb in ("/join", "/create") and len(words) == 2:
            self._awaited.add(words[1].lower())
            return
        lobby = self.renderer.room is None and self.talking_to is None and not quits
        # A join already on its way makes the next bare word a message.
        if not lobby or any(not target.startswith("@") for target in self._awaited):
            return
        if len(words) == 1 and not verb.startswith("/"):
            self._awaited.add(verb)
        elif len(words) == 2 and verb == "create":
            self._awaited.add(words[1].lower())

    def _local_command(self, verb: str, words: list[str]) -> bool:
        """
        Do what the client answers itself: C{/dm}, C{/room} and C{/history}
        alone.

        @return: Whether C{verb} was one of them.
        """
        if verb == "/dm":
            if len(words) == 2 and valid_name(words[1]):
                self._talk_to(words[1])
            else:
                self._complain("usage: /dm <user>, then type to talk with them; /room goes back")
        elif verb == "/room":
            if len(words) > 1:
                self._complain("/room takes no argument; /join <room> goes to another room")
            elif self.talking_to is None:
                self._tell(f"lines already go to {self._place()}")
            else:
                self._stop_talking()
        elif verb == "/history" and len(words) == 1:
            self._page_back()
        elif verb == "/token":
            self._complain(
                "the client keeps its session token to itself (in memory, never shown); "
                "it resumes the session when the connection drops"
            )
        elif verb == "/password" and len(words) == 1:
            self._set_phase(Phase.ASK_CURRENT)
        elif verb == "/delete" and self._shown_time(words):
            self._delete_shown(verb, " ".join(words[1:]))
        else:
            return False
        return True

    def _shown_time(self, words: list[str]) -> bool:
        """
        Whether C{/delete} names its message by the time the client showed
        (C{/delete 14:02:05}) rather than by the server's timestamp, which
        the client does not show.
        """
        return self.renderer.room is not None and bool(_SHOWN_TIME.match(" ".join(words[1:])))

    def _delete_shown(self, verb: str, shown: str) -> None:
        """
        C{/delete <time shown>}: the message of the room shown at that time
        (today's when only the time of day is given), sent by its stamp;
        when none or several were, say so rather than guess.
        """
        room = self.renderer.room or ""
        when = self.renderer.when
        matches = [
            (stamp, sender)
            for stamp, sender in self._seen.get(room.lower(), ())
            if when(stamp) == shown
        ]
        if len(matches) == 1:
            self._send(f"{verb} {matches[0][0]}")
            return
        if not matches:
            self._complain(
                f"no message shown at {shown} in {clean(room)}; "
                "/delete takes a time shown or a timestamp like 2026-12-02T14:02:05.123Z"
            )
            return
        which = ", ".join(f"{stamp} ({clean(sender)})" for stamp, sender in matches[-5:])
        self._complain(f"{len(matches)} messages at {shown}: /delete one of {which}")

    def _place(self) -> str:
        room = self.renderer.room
        return "the lobby" if room is None else room

    def _talk_to(self, user: str) -> None:
        """
        Send the lines typed from now on to C{user}, and show the end of
        the conversation so far, as joining a room shows its history.  The
        name is taken as spelled when Tab or a line has shown it.
        """
        user = self.users.get(user.lower(), user)
        self.talking_to = user
        self._opening = user.lower()
        self._oldest.pop(f"@{user.lower()}", None)
        self._awaited.add(f"@{user.lower()}")
        self.renderer.expect_opening(f"@{user}")
        self._update_prompt()
        self._tell(
            f"talking with {clean(user)}: the lines you type go to {clean(user)} only; "
            f"/room goes back to {self._place()}"
        )
        self._send(f"/history @{user}")

    def _stop_talking(self, *, announce: bool = True) -> None:
        self.talking_to = None
        self._opening = None
        self._update_prompt()
        if announce:
            self._tell(f"lines go to {self._place()} again")

    def _page_back(self) -> None:
        """
        C{/history} alone: the page before the oldest message seen of the
        conversation the lines go to, or else of the room.
        """
        if self.talking_to is not None:
            target = f"@{self.talking_to}"
        elif self.renderer.room is not None:
            target = self.renderer.room
        else:
            self._complain("in the lobby, say whose history: /history <room> or /history @<user>")
            return
        oldest = self._oldest.get(target.lower())
        self._send(f"/history {target}" + (f" {oldest}" if oldest else ""))

    def _cancel_hello_timer(self) -> None:
        if self._hello_timer is not None and self._hello_timer.active():
            self._hello_timer.cancel()
        self._hello_timer = None

    def _finish(self, code: int, reason: str | None = None) -> None:
        if self.phase is Phase.DONE:
            return
        self.phase = Phase.DONE
        self._cancel_hello_timer()
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self._stop_history_timer()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._token = None
        self._pending.clear()
        self.screen.close()
        if self._server is not None and self._server.transport is not None:
            self._server.transport.loseConnection()
        self.finished.callback(Outcome(code, reason))
