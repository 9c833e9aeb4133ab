"""
Fuzzing the wire: hostile and random input against the line contract in
docs/protocol.md.

The unit tests say what the server answers to lines someone thought of;
these say what must hold whatever arrives.  Hypothesis drives in-memory
servers (L{tests.helpers.Chat}: a L{Clock}, bcrypt inline at cost 4) with
arbitrary bytes cut at arbitrary places and with random command scripts
over several connections, and after every step checks the output against
the contract and the server's memory against itself.  One test over real
TCP checks that garbage from some connections costs the others nothing.

Every Hypothesis test here is derandomized, so CI runs the same examples
every time and a failure is reproducible from the test name alone.
"""

from __future__ import annotations

import itertools
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest_twisted
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

import chat.commands
import chat.wire.protocol
from chat.commands import COMMANDS, State
from chat.guard import has_visible
from chat.lines import ErrorCode, ServerLine, format_timestamp, parse_timestamp
from tests.e2e import RunningServer
from tests.helpers import Chat, Client

#: Deterministic (derandomize), no example database on disk, no deadline
#: (a bcrypt hash or a fsync can take a few ms on a loaded CI box).  The
#: autouse C{_in_tmp_path} fixture is function-scoped but harmless to share
#: between examples: each example makes its own data directory.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    # Explaining a failure reruns it thousands of times; the shrunk example
    # and its traceback are what a reader needs.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

TAGS = frozenset(
    {"HELLO", "PROMPT", "OK", "ERR", "ROOM", "END", "MEMBER", "HISTORY"}
    | {"MSG", "JOIN", "PART", "INFO", "BYE"}
    | {"DM", "CONVERSATION", "IGNORED"}
    | {"TOPIC", "OP", "DEOP", "OPERATOR", "KICK", "BAN", "UNBAN", "BANNED", "MUTE", "UNMUTE"}
    | {"DELETE", "NOTICE", "DROPPED"}
)
CODES = frozenset(code.value for code in ErrorCode)
NAME = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
#: C0 and C1 controls but TAB: what no echoed message text may hold once
#: the server cleans message text.
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: What message cleaning may remove: controls, bidi embeddings, overrides
#: and isolates, line and paragraph separators.  Text without any of these
#: must come back byte for byte.
CLEANABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
#: How each tag's words after it look, and whether a text must (True),
#: must not (False) or may (None) follow.  C{"name"} and C{"ts"} are
#: checked as names and timestamps; anything else must match exactly.
SHAPES: dict[str, tuple[list[tuple[str, ...]], bool | None]] = {
    "HELLO": ([("chatroom", "1")], True),
    "PROMPT": ([("username",), ("password",)], True),
    # From the command table: the verbs whose success says OK <verb> <name>
    # (register, login, create, join, leave).
    "OK": (
        [(spec.name, "name") for spec in COMMANDS if spec.ok]
        + [("lock", "name"), ("unlock", "name")]
        + [("token", "token"), ("password",), ("logout-all",)],
        None,
    ),
    "ERR": ([("code",)], True),
    "ROOM": ([("name", "count")], False),
    "END": (
        [
            ("rooms",),
            ("members", "name"),
            ("history", "name"),
            ("history", "@name"),
            ("help",),
            ("unread",),
            ("dms",),
            ("ignores",),
            ("ops", "name"),
            ("bans", "name"),
            ("audit",),
        ],
        False,
    ),
    "TOPIC": ([("name", "ts", "name")], True),
    "OP": ([("name", "ts", "name", "name")], False),
    "DEOP": ([("name", "ts", "name", "name")], False),
    "OPERATOR": ([("name", "name", "owner"), ("name", "name", "operator")], False),
    "KICK": ([("name", "ts", "name", "name")], None),
    "BAN": ([("name", "ts", "name", "name")], None),
    "UNBAN": ([("name", "ts", "name", "name")], False),
    "BANNED": ([("name", "name", "ts", "name")], None),
    "MUTE": ([("name", "ts", "name", "name")], False),
    "UNMUTE": ([("name", "ts", "name", "name")], False),
    "DELETE": ([("name", "ts", "name")], False),
    "NOTICE": ([("ts", "name")], True),
    "DROPPED": ([("name", "ts", "name")], None),
    "MEMBER": ([("name", "name")], False),
    "HISTORY": ([("name", "ts", "name"), ("@name", "ts", "name")], True),
    "DM": ([("name", "ts", "name")], True),
    "CONVERSATION": ([("name", "ts")], False),
    "IGNORED": ([("name",)], False),
    "MSG": ([("name", "ts", "name")], True),
    "JOIN": ([("name", "ts", "name")], False),
    "PART": ([("name", "ts", "name")], False),
    "INFO": ([()], True),
    "BYE": ([()], True),
}


def server_clean_text() -> Callable[[str], str] | None:
    """
    The server's message-text cleaner, once the protocol uses one.  Until
    then message text goes out as it came in, and only the shape of the
    lines is checked.
    """
    for module in (chat.wire.protocol, chat.commands):
        found = getattr(module, "clean_text", None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    return None


def parse_strict(line: str) -> ServerLine:
    """
    Split a server line as the contract defines it, failing on anything a
    lenient parser (like L{chat.lines.parse_line}) would let through: empty
    args (a double space), unknown tags, wrong arity, bad names, codes or
    timestamps.
    """
    assert "\r" not in line, f"CR in {line!r}"
    head, sep, text = line.partition(" :")
    tag, *args = head.split(" ")
    assert tag in TAGS, f"unknown tag in {line!r}"
    assert all(args), f"empty argument (double space?) in {line!r}"
    shapes, has_text = SHAPES[tag]
    assert has_text is None or has_text == bool(sep), f"text present/absent in {line!r}"
    for shape in shapes:
        if len(shape) != len(args):
            continue
        if all(
            (want == "name" and NAME.match(got) is not None)
            or (want == "@name" and got[:1] == "@" and NAME.match(got[1:]) is not None)
            or (want == "ts" and _is_timestamp(got))
            or (want == "code" and got in CODES)
            or (want == "count" and got.isdigit() and got == str(int(got)))
            or (want == "token" and re.fullmatch(r"[A-Za-z0-9_-]{22,}", got) is not None)
            or want == got
            for want, got in zip(shape, args, strict=True)
        ):
            break
    else:
        raise AssertionError(f"malformed {tag} line: {line!r}")
    return ServerLine(tag, tuple(args), text if sep else None)


def _is_timestamp(stamp: str) -> bool:
    try:
        parse_timestamp(stamp)
    except ValueError:
        return False
    return True


def is_subsequence(short: str, long: str) -> bool:
    """
    Whether C{short} is C{long} with some characters left out: what
    cleaning may do to a message, and all it may do.
    """
    chars = iter(long)
    return all(c in chars for c in short)


@dataclass
class Watched:
    """
    One in-memory connection and everything the test knows from its output.

    @ivar user: The name of the last C{OK login}/C{OK register}, if any.
    @ivar room: The room of the last C{OK join}, until C{OK leave}.
    @ivar block: The tag of a multi-line answer in progress (C{ROOM},
        C{MEMBER}, C{INFO} or C{HISTORY}) and its room, if any.
    """

    client: Client
    label: str
    user: str | None = None
    room: str | None = None
    bye: bool = False
    seen_hello: bool = False
    block: tuple[str, str | None] | None = None
    room_names: list[str] = field(default_factory=list)
    #: The stamp of the last line of the history block in progress.
    last_stamp: str | None = None
    #: The stamp of the last MSG seen in each room.
    room_stamps: dict[str, str] = field(default_factory=dict)
    #: Whether this client has sent a 0xFF byte, the start of a telnet
    #: command: until then it must never receive one.
    sent_iac: bool = False

    @property
    def protocol(self) -> chat.wire.protocol.ChatProtocol:
        return self.client.protocol

    def send(self, data: bytes) -> None:
        self.sent_iac = self.sent_iac or b"\xff" in data
        self.client.send(data)

    def read(self, now: float) -> list[ServerLine]:
        """
        Take, check and parse everything written since the last read.
        """
        data = self.client.transport.value()
        self.client.transport.clear()
        if not data:
            return []
        assert not self.bye, f"{self.label}: {data!r} written after BYE"
        data = self._telnet_answers(data)
        if not data:
            return []
        assert data.endswith(b"\n"), f"{self.label}: incomplete line in {data!r}"
        parsed = []
        for raw in data[:-1].split(b"\n"):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise AssertionError(f"{self.label}: not UTF-8: {raw!r}") from None
            parsed.append(self._follow(parse_strict(line), line, now))
        return parsed

    def _telnet_answers(self, data: bytes) -> bytes:
        """
        Remove the answers to telnet commands, which come between lines,
        checking that each is one the server may send and that this client
        asked for it.
        """
        lines = []
        while data:
            if data[:1] == b"\xff":
                assert self.sent_iac, f"{self.label}: telnet bytes, unasked: {data!r}"
                answer, data = data[:3], data[3:]
                assert answer == b"\xff\xfb\x06" or answer[1:2] in (b"\xfc", b"\xfe"), answer
                continue
            line, end, data = data.partition(b"\n")
            lines.append(line + end)
        return b"".join(lines)

    def _in_block(self, line: ServerLine, raw: str, now: float) -> ServerLine:
        """
        Inside a multi-line answer: more of the same, or its C{END}.
        """
        assert self.block is not None
        kind, room = self.block
        tag, args = line.tag, line.args
        if tag == kind and (room is None or args[0] == room):
            if tag == "ROOM":
                self.room_names.append(args[0])
            elif tag == "HISTORY":
                # One order: stamps only go up (and may run ahead of the
                # clock in a room busier than one message a millisecond).
                assert self.last_stamp is None or args[1] > self.last_stamp, raw
                self.last_stamp = args[1]
                self._check_text(line, raw)
            return line
        end = {
            "ROOM": ("rooms",),
            "INFO": ("help",),
            "HISTORY": ("history", room),
            "MEMBER": ("members", room),
            "CONVERSATION": ("dms",),
            "IGNORED": ("ignores",),
        }[kind]
        assert tag == "END" and args == end, f"{self.label}: {raw!r} inside a {kind} block"
        self.block = None
        if kind == "ROOM":
            folded = [n.lower() for n in self.room_names]
            assert folded == sorted(set(folded)), f"room list {self.room_names}"
            self.room_names = []
        return line

    def _check_text(self, line: ServerLine, raw: str) -> None:
        if server_clean_text() is not None:
            assert line.text is not None and not CONTROL.search(line.text), raw

    def _follow(self, line: ServerLine, raw: str, now: float) -> ServerLine:
        """
        Check one line against what came before it on this connection.
        """
        tag, args = line.tag, line.args
        assert not self.bye, f"{self.label}: {raw!r} after BYE"
        assert self.seen_hello or tag == "HELLO", f"{self.label}: {raw!r} before HELLO"
        assert tag != "HELLO" or not self.seen_hello, f"{self.label}: second HELLO"
        self.seen_hello = True
        if self.block is not None:
            return self._in_block(line, raw, now)
        if tag == "ROOM":
            self.block = ("ROOM", None)
            self.room_names = [args[0]]
        elif tag == "MEMBER":
            self.block = ("MEMBER", args[0])
        elif tag == "INFO":
            self.block = ("INFO", None)
        elif tag == "HISTORY":
            # A page of /history, of any room or conversation.
            assert self.user is not None, f"{self.label}: {raw!r} before login"
            self.block = ("HISTORY", args[0])
            self.last_stamp = args[1]
            self._check_text(line, raw)
        elif tag in ("CONVERSATION", "IGNORED"):
            assert self.user is not None, f"{self.label}: {raw!r} before login"
            self.block = (tag, None)
        elif tag == "DM":
            assert self.user is not None, f"{self.label}: {raw!r} before login"
            self._check_text(line, raw)
        elif tag == "END":
            # An empty list, history or page has no block lines before END.
            assert args in (("rooms",), ("history", self.room), ("dms",), ("ignores",)) or (
                args[0] == "history" and self.user is not None
            ), f"{self.label}: stray {raw!r}"
        elif tag == "OK" and args[0] in ("login", "register"):
            assert self.user is None, f"{self.label}: logged in twice"
            self.user = args[1]
        elif tag == "OK" and args[0] == "join":
            assert self.user is not None, f"{self.label}: joined before login"
            self.room = args[1]
            self.block = ("HISTORY", args[1])
            self.last_stamp = None
        elif tag == "OK" and args[0] == "leave":
            assert self.room == args[1], f"{self.label}: left {args[1]}, was in {self.room}"
            self.room = None
        elif tag == "BYE":
            self.bye = True
        elif tag in ("MSG", "JOIN", "PART"):
            assert args[0] == self.room, f"{self.label}: {raw!r} while in {self.room}"
            if tag == "MSG":
                # Now, or a millisecond after the room's last message.
                assert args[1] >= format_timestamp(now), f"{self.label}: stamp of {raw!r} at {now}"
                assert self.room_stamps.get(args[0], "") < args[1], f"{self.label}: {raw!r}"
                self.room_stamps[args[0]] = args[1]
            else:
                assert args[1] == format_timestamp(now), f"{self.label}: stamp of {raw!r}"
            if tag != "MSG":
                assert self.user is not None and args[2].lower() != self.user.lower(), (
                    f"{self.label}: own {tag} {raw!r}"
                )
        if tag == "MSG":
            self._check_text(line, raw)
        return line


def check_server(chat_: Chat, watched: list[Watched]) -> None:
    """
    The server's memory agrees with itself and with what it told clients:
    every member of every room is a live, logged-in connection in that
    room; counts are distinct users; each connection is where its last
    C{OK} said it is.
    """
    service = chat_.service
    live = service.connections
    for w in watched:
        p = w.protocol
        if w.client.closed:
            assert p not in live, f"{w.label}: closed but still a connection"
            assert p.state is State.CLOSED
            continue
        assert p in live, f"{w.label}: open but not in service.connections"
        if p.state is State.IN_ROOM:
            assert p.user is not None and p.user.room is not None
            assert p.user.room.name == w.room, f"{w.label}: in {p.user.room.name}, told {w.room}"
        elif p.state is State.LOBBY:
            assert p.user is not None and p.user.room is None and w.room is None
        elif p.state is not State.CLOSED:
            assert p.user is None and w.user is None, f"{w.label}: {p.state} but logged in"
        if p.user is not None:
            assert p.user.name == w.user
    for key, room in service.rooms.items():
        assert key == room.name.lower() and NAME.match(room.name), room.name
        # Read after the end of a turn: everything said in it has been sent.
        assert not getattr(room, "pending", None), (room.name, room.pending)
        counts = Counter(member.key for member in room.members)
        assert room.counts == counts, (room.name, room.counts, counts)
        for member in room.members:
            conn = member.mind
            assert member.room is room
            assert conn in live, f"{member.name} in {room.name} is not connected"
            assert isinstance(conn, chat.wire.protocol.ChatProtocol)
            assert conn.state is State.IN_ROOM and conn.user is member
    listed = service.room_list()
    assert [n.lower() for n, _ in listed] == sorted({n.lower() for n, _ in listed})
    for name, members in listed:
        room = service.find(name)
        assert room is not None and members == len(set(room.counts)) == len(room.users())


@contextmanager
def fresh_chat() -> Iterator[Chat]:
    """
    A whole in-memory server on a new data directory, stopped afterwards.
    Not pytest's C{tmp_path}: Hypothesis runs many examples in one test.
    """
    with tempfile.TemporaryDirectory(prefix="fuzz-") as data:
        server = Chat(Path(data))
        try:
            yield server
        finally:
            server.stop()


def read_all(chat_: Chat, watched: list[Watched]) -> dict[str, list[ServerLine]]:
    """
    End the reactor turn (rooms send what was said in it at its end), then
    read every connection.
    """
    chat_.clock.advance(0)
    now = chat_.clock.seconds()
    return {w.label: w.read(now) for w in watched}


# Vocabulary

NAMES = ["alice", "bob", "ALICE", "carol", "general", "GENERAL", "Lounge", "lounge"]
NAMES += ["exit", "create", "login", "x" * 32, "x" * 33, "bad!", "caf\u00e9", "a b", "-_-"]
PASSWORDS = ["password1", "wrong pass", "short", " spaced pass ", "p" * 128, "p" * 129]
PASSWORDS += ["/slashed-pw", "exit"]
#: Every /verb, from the command table.
VERBS = [spec.name for spec in COMMANDS]
SPECIAL_BYTES = [
    b"\xff",
    b"\xff\xf4\xff\xfd\x06",  # telnet's Ctrl-C: IAC IP IAC DO TIMING-MARK
    b"\xff\xfb\x1f",  # IAC WILL NAWS
    b"\xff\xfa\x18\x00xterm\xff\xf0",  # a whole subnegotiation
    b"\xff\xfa",  # one cut short
    b"\xff\xff",  # a literal 0xFF
    b"\xc3",
    b"\xc3(",
    b"\xed\xa0\x80",  # a UTF-16 surrogate, not UTF-8
    b"\x00",
    b"\r",
    b"\x1b[2J",
    b"\x07",
    "\u202e".encode(),
    "\u2028".encode(),
    "\x85".encode(),
    "\xa0".encode(),
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\t",
    b" ",
]

names = st.sampled_from(NAMES)
passwords = st.sampled_from(PASSWORDS)
#: Mostly the accounts that exist and their password, so that logins,
#: joins and parts happen often enough to be checked.
users = st.one_of(st.sampled_from(["alice", "bob", "Bob", "carol", "dave"]), names)
good_passwords = st.one_of(st.just("password1"), passwords)
rooms = st.one_of(st.sampled_from(["general", "GENERAL", "Lounge", "lounge", "Attic"]), names)
text = st.text(
    st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=40
)
#: Lines that look blank to someone: ASCII and Unicode white space, which
#: Python's C{str.split} and C{str.strip} treat differently from the
#: contract's "spaces and tabs".
blanks = st.text(" \t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u3000", max_size=4)


@st.composite
def command_line(draw: st.DrawFn) -> bytes:
    """
    One client line without its end: commands of every verb (right and
    wrong), bare words, free text, and the awkward bytes.
    """
    kind = draw(st.integers(0, 12))
    if kind == 0:
        verb = draw(st.sampled_from([*VERBS, "bogus", "", "JOIN", "Quit"]))
        args = draw(st.lists(st.one_of(names, passwords), max_size=3))
        line = " ".join([f"/{verb}", *args])
    elif kind == 1:
        verb = draw(st.sampled_from(["register", "login", "LOGIN"]))
        line = f"/{verb} {draw(users)} {draw(good_passwords)}"
    elif kind == 2:
        line = f"/{draw(st.sampled_from(['create', 'join', 'Join']))} {draw(rooms)}"
    elif kind == 3:
        line = draw(
            st.sampled_from(
                ["/rooms", "/leave", "/who", "/help", "/quit", "/", "/join general", "general"]
            )
        )
    elif kind == 4:
        bare = ["login", "register", "create", "exit", " EXIT\t", "create x y"]
        line = draw(
            st.one_of(st.sampled_from(bare), names, passwords, names.map("create {}".format))
        )
    elif kind == 5:
        line = draw(text)
    elif kind == 6:
        line = "//" + draw(text)
    elif kind == 7:
        size = draw(st.integers(2040, 2052))
        line = draw(st.sampled_from(["", "//", "/join "])) + "z" * size
    elif kind == 8:
        line = draw(blanks)
    elif kind == 11:
        # Private messages, conversations, paging and ignore lists.
        verb = draw(st.sampled_from(["msg", "MSG", "history", "ignore", "unignore"]))
        target = draw(st.one_of(users, users.map("@{}".format), rooms))
        more = draw(
            st.lists(
                st.one_of(
                    text,
                    st.sampled_from(["1", "0", "200", "201", "-1", "2026-12-02T10:00:00.000Z"]),
                ),
                max_size=2,
            )
        )
        line = " ".join([f"/{verb}", target, *more])
        if draw(st.booleans()):
            line = draw(st.sampled_from(["/dms", "/ignores", "/msg alice", "/msg bob hi"]))
    elif kind == 9:
        # The guided dialog in one go; the lines may arrive in any state.
        verb = draw(st.sampled_from(["login", "register"]))
        line = "\n".join([verb, draw(users), draw(good_passwords)])
    else:
        head = draw(st.one_of(text, names, st.just("/join")))
        odd = draw(st.sampled_from(SPECIAL_BYTES))
        tail = draw(st.one_of(text, names))
        return head.encode() + odd + tail.encode()
    return line.encode()


ENDS = st.sampled_from([b"\n", b"\n", b"\n", b"\n", b"\r\n", b"\r\r\n", b"", b" \n"])
ADVANCE = st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.1, 0.1, 1.0, 2.5, 7.0])


@dataclass(frozen=True)
class Step:
    """
    What one connection sends at once (a line, or a burst of it), after
    the clock moves on by C{advance} seconds.
    """

    who: int
    line: bytes
    end: bytes
    repeat: int
    advance: float

    @property
    def data(self) -> bytes:
        return (self.line + self.end) * self.repeat


steps = st.builds(
    Step,
    who=st.integers(0, 2),
    line=command_line(),
    end=ENDS,
    repeat=st.one_of(st.just(1), st.just(1), st.just(1), st.integers(2, 25)),
    advance=ADVANCE,
)


def open_connections(chat_: Chat, starts: list[str]) -> list[Watched]:
    """
    Connections in the asked states: C{fresh} (just the HELLO), or logged
    in as alice or bob, in the lobby or in general.
    """
    chat_.user("alice").protocol.transport.loseConnection()  # type: ignore[union-attr]
    chat_.user("bob").protocol.transport.loseConnection()  # type: ignore[union-attr]
    watched = []
    for i, start in enumerate(starts):
        w = Watched(chat_.connect(), f"c{i}")
        w.read(chat_.clock.seconds())
        if start != "fresh":
            user, where = start.split("@")
            w.client.send(f"/login {user} password1")
            if where == "general":
                w.client.send("/join general")
        watched.append(w)
    read_all(chat_, watched)
    check_server(chat_, watched)
    return watched


STARTS = st.sampled_from(["fresh", "alice@lobby", "alice@general", "bob@general", "bob@lobby"])


def expected_say(w: Watched, step: Step) -> str | None:
    """
    The text a step must be echoed with, if it is one chat message sent by
    a connection in a room with nothing else pending; else L{None}.
    """
    p = w.protocol
    if p.state is not State.IN_ROOM or p.paused or p._buffer or p._skipping or p._telnet:
        return None
    if step.repeat != 1 or step.end not in (b"\n", b"\r\n") or b"\n" in step.line:
        return None
    if len(step.line) > 2048:
        return None
    try:
        line = step.line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    clean = server_clean_text()
    if clean is not None:
        # What a line is, is decided on its cleaned text.
        line = clean(line)
    if "\r" in line or not line.strip(" \t") or line.strip(" \t").lower() == "exit":
        return None
    if line.startswith("//"):
        return line[1:]
    return None if line.startswith("/") else line


def check_say(
    w: Watched, sent: str, room: str, out: dict[str, list[ServerLine]], others: list[Watched]
) -> None:
    """
    A chat message gets exactly one C{MSG} echo, unless an C{ERR} came back
    (flood control, storage) or cleaning left nothing to send; every other
    connection in the room gets the same line.
    """
    mine = out[w.label]
    if any(line.tag == "ERR" for line in mine):
        assert [line.tag for line in mine] == ["ERR"], mine
        return
    clean = server_clean_text()
    want = clean(sent) if clean is not None else sent
    if clean is not None and not has_visible(want):
        assert mine == [], mine
        return
    assert len(mine) == 1 and mine[0].tag == "MSG", (sent, mine)
    msg = mine[0]
    assert msg.args[0] == room and msg.args[2] == w.user, msg
    assert msg.text == want, (sent, msg.text)
    assert msg.text is not None and is_subsequence(msg.text, sent), (sent, msg.text)
    if not CLEANABLE.search(sent):
        assert msg.text == sent, (sent, msg.text)
    for other in others:
        if other is not w and not other.bye and other.room == room:
            assert msg in out[other.label], (other.label, msg, out[other.label])


# The tests


@FUZZ
@given(
    start=st.sampled_from(["fresh", "alice@general"]),
    pieces=st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.sampled_from([b"\n", b"\r\n", b"\r", b"exit", b"/quit", *SPECIAL_BYTES]),
            st.integers(2040, 2060).map(lambda n: b"y" * n),
            command_line(),
            blanks.map(str.encode),
        ),
        max_size=25,
    ),
    cuts=st.lists(st.integers(0, 60_000), max_size=12),
    advances=st.lists(ADVANCE, min_size=13, max_size=13),
)
def test_arbitrary_bytes_in_arbitrary_chunks(
    start: str, pieces: list[bytes], cuts: list[int], advances: list[float]
) -> None:
    """
    Whatever bytes arrive, however TCP cuts them up, nothing escapes
    C{dataReceived}, every line out is well formed, nothing follows BYE,
    and the server's rooms stay consistent (with a bystander in the room
    to receive whatever the victim manages to say).
    """
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    with fresh_chat() as server:
        victim, bystander = open_connections(server, [start, "bob@general"])
        watched = [victim, bystander]
        for chunk, advance in zip(chunks, advances, strict=False):
            server.clock.advance(advance)
            victim.send(chunk)
            read_all(server, watched)
            check_server(server, watched)
        # The line in progress, if any, ends: the connection still works.
        server.clock.advance(10)
        victim.send(b"\n/help\n")
        out = read_all(server, watched)
        check_server(server, watched)
        if not victim.bye:
            assert [line.tag for line in out[victim.label]][-2:] in (["INFO", "END"], ["BYE"])


@settings(FUZZ, max_examples=300)
@given(
    starts=st.lists(STARTS, min_size=2, max_size=3), script=st.lists(steps, min_size=3, max_size=40)
)
def test_random_command_scripts(starts: list[str], script: list[Step]) -> None:
    """
    Random scripts of commands, good and bad, over two or three
    connections (the same account on two of them, sometimes), with the
    clock moving so that flood control both bites and does not.  After
    every step the output is checked line by line, the server's memory is
    checked against itself and against what each client was told, and a
    chat message is echoed exactly once to everyone in the room.
    """
    with fresh_chat() as server:
        watched = open_connections(server, starts)
        for step in script:
            w = watched[step.who % len(watched)]
            if w.client.closed:
                continue
            server.clock.advance(step.advance)
            read_all(server, watched)  # whatever the clock set off
            say = expected_say(w, step)
            room = w.room
            w.send(step.data)
            out = read_all(server, watched)
            check_server(server, watched)
            if say is not None:
                assert room is not None
                check_say(w, say, room, out, watched)
                event("a chat message checked")
            for lines in out.values():
                for line in lines:
                    event(f"saw {line.tag} {line.args[0] if line.tag in ('ERR', 'OK') else ''}")


@FUZZ
@given(burst=st.integers(1, 40), gap=st.sampled_from([0.0, 0.05, 0.1, 0.5, 2.0]))
def test_flood_control_counts(burst: int, gap: float) -> None:
    """
    Flood control at the edges: a burst of chat lines is echoed up to the
    burst allowance (20), and every line beyond it gets exactly one
    C{ERR rate-limited}; after a pause, lines flow again at the rate.
    """
    with fresh_chat() as server:
        (w,) = open_connections(server, ["alice@general"])
        server.clock.advance(5)  # a full bucket, whatever setup spent
        w.client.send(b"".join(b"m%d\n" % i for i in range(burst)))
        tags = [line.tag for line in read_all(server, [w])[w.label]]
        echoed = min(burst, 20)
        assert tags == ["MSG"] * echoed + ["ERR"] * (burst - echoed)
        server.clock.advance(gap)
        w.client.send(b"again\n")
        tags = [line.tag for line in read_all(server, [w])[w.label]]
        refilled = burst < 20 or gap >= 0.1
        assert tags == (["MSG"] if refilled else ["ERR"])


# Over real TCP

GARBAGE_BYTES = 300_000
MESSAGES = 50


def garbage(rng: random.Random, size: int) -> bytes:
    """
    Seeded junk: random bytes, over-long lines, invalid UTF-8, stray CRs,
    runs of short lines and of NULs.
    """
    parts: list[bytes] = []
    total = 0
    while total < size:
        kind = rng.randrange(6)
        if kind == 0:
            part = rng.randbytes(rng.randrange(1, 4000))
        elif kind == 1:
            part = b"L" * rng.randrange(2049, 20_000) + b"\n"
        elif kind == 2:
            part = rng.choice(SPECIAL_BYTES) * rng.randrange(1, 50) + b"\n"
        elif kind == 3:
            part = b"".join(b"w%d\r\n" % rng.randrange(1000) for _ in range(rng.randrange(100)))
        elif kind == 4:
            part = b"half\rline\n" + b"\x00" * rng.randrange(3000)
        else:
            part = b"/join general\n/" + rng.randbytes(40) + b"\n"
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def check_lines(lines: list[str]) -> None:
    for line in lines:
        parse_strict(line)


@pytest_twisted.ensureDeferred
async def test_garbage_on_some_connections_costs_the_others_nothing(tmp_path: Path) -> None:
    """
    Four connections pour a few hundred KB of seeded junk each, in random
    chunk sizes, while alice and bob chat: each receives every message of
    the other, in order, intact; every line the junk earned is well formed;
    and the server still takes a new connection and a login afterwards.
    Flood control is off so that the chatters' pace and the final C{exit}
    of each junk connection are never dropped as excess lines.
    """
    running = RunningServer(tmp_path / "data", "--flood-rate", "0")
    await running.start()
    try:
        alice = await running.member("alice")
        bob = await running.member("bob")
        await alice.until("JOIN ")
        rng = random.Random(20261125)
        vandals = [await running.connect() for _ in range(4)]
        junk = [garbage(rng, GARBAGE_BYTES) for _ in vandals]
        sent: dict[str, list[str]] = {"alice": [], "bob": []}
        for i in range(MESSAGES):
            for vandal, data in zip(vandals, junk, strict=True):
                share = len(data) // MESSAGES
                piece = data[i * share : (i + 1) * share if i < MESSAGES - 1 else None]
                while piece:
                    cut = rng.randrange(1, 9000)
                    vandal.send(piece[:cut])
                    piece = piece[cut:]
            for name, client in (("alice", alice), ("bob", bob)):
                message = f"{name} #{i} \u2713 caf\u00e9\t:colon // tail "
                client.send(message)
                sent[name].append(message)
        for client in (alice, bob):
            got: dict[str, list[str]] = {"alice": [], "bob": []}
            while sum(len(v) for v in got.values()) < 2 * MESSAGES:
                raw = await client.line()
                line = parse_strict(raw)
                if line.tag == "MSG":
                    got[line.args[2]].append(line.text or "")
            assert got == sent
        for vandal in vandals:
            vandal.send(b"\nexit\n")
        for n, vandal in enumerate(vandals):
            # "exit" was the last thing sent: once the server has closed the
            # connection it has chewed through everything before it.  A
            # connection dropped without a BYE is one an exception killed.
            await vandal.closed()
            lines = list(vandal.lines.pending)
            check_lines(lines)
            assert lines and lines[-1].startswith("BYE "), (n, lines[-3:])
        check_lines(alice.lines.pending + bob.lines.pending)
        carol = await running.user("carol")
        again = await running.user("alice", verb="login")
        again.send("/join general", "still here")
        assert (await again.until("MSG "))[-1].endswith(" alice :still here")
        carol.send("/who")
        assert (await carol.line()).startswith("ERR bad-state ")
    finally:
        await running.stop()
