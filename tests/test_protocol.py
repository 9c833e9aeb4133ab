"""
The protocol contract, line by line, against an in-memory server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse

from chat.lines import format_timestamp, parse_line
from chat.protocol import State
from tests.helpers import Chat, HeldRunner


@pytest.fixture
def chat(tmp_path: Path) -> Chat:
    return Chat(tmp_path)


def codes(lines: list[str]) -> list[str]:
    return [parse_line(line).args[0] for line in lines if line.startswith("ERR ")]


# Connecting and accounts


def test_hello_is_the_first_line(chat: Chat) -> None:
    client = chat.connect()
    assert client.take() == [
        "HELLO chatroom 1 :Welcome to chatroom. Type login or register, or /help."
    ]


def test_register_logs_in_and_lists_rooms(chat: Chat) -> None:
    client = chat.connect()
    client.take()
    client.send("/register alice password1")
    assert client.take() == ["OK register alice", "ROOM general 0", "END rooms"]
    assert client.protocol.state is State.LOBBY
    stored = (chat.data / "users.txt").read_text()
    assert stored.startswith("alice:bcrypt-sha256$2b$04$")
    assert "password1" not in stored


def test_login_any_case_answers_with_the_registered_spelling(chat: Chat) -> None:
    chat.user("Alice")
    client = chat.connect()
    client.take()
    client.send("/LOGIN aLiCe password1")
    assert client.take()[0] == "OK login Alice"


def test_wrong_password_and_unknown_user_look_the_same(chat: Chat) -> None:
    chat.user("alice")
    client = chat.connect()
    client.take()
    client.send("/login alice password2", "/login nobody password1")
    lines = client.take()
    assert codes(lines) == ["bad-credentials", "bad-credentials"]
    assert lines[0].split(" :")[1] == lines[1].split(" :")[1]
    assert client.protocol.state is State.AUTH
    client.send("/login alice password1")
    assert client.take()[0] == "OK login alice"


def test_name_taken_in_any_case(chat: Chat) -> None:
    chat.user("alice")
    client = chat.connect()
    client.take()
    client.send("/register ALICE password1")
    assert codes(client.take()) == ["name-taken"]


@pytest.mark.parametrize("name", ["al!ce", "a" * 33, "émile", "a.b"])
def test_bad_names(chat: Chat, name: str) -> None:
    client = chat.connect()
    client.take()
    client.send(f"/register {name} password1")
    assert codes(client.take()) == ["bad-name"]


@pytest.mark.parametrize("password", ["short77", "x" * 129])
def test_weak_passwords(chat: Chat, password: str) -> None:
    client = chat.connect()
    client.take()
    client.send(f"/register alice {password}")
    assert codes(client.take()) == ["weak-password"]
    assert not (chat.data / "users.txt").exists()


def test_every_character_of_a_long_password_counts(chat: Chat) -> None:
    base = "é" * 100  # 200 bytes: bcrypt alone would stop at 72
    chat.user("alice", base + "a" * 28)
    client = chat.connect()
    client.send(f"/login alice {base}{'a' * 27}b")
    assert codes(client.take()) == ["bad-credentials"]
    client.send(f"/login alice {base}{'a' * 28}")
    assert client.take()[0] == "OK login alice"


def test_password_is_everything_after_the_name(chat: Chat) -> None:
    chat.user("alice", " two words ")
    client = chat.connect()
    client.send("/login alice two words ")
    assert codes(client.take()) == ["bad-credentials"]
    client.send("/login alice  two words ")
    assert "OK login alice" in client.take()


def test_registration_closed_without_an_account_store(tmp_path: Path) -> None:
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"password1")
    chat = Chat(tmp_path, checker=checker)
    client = chat.connect()
    client.take()
    client.send("/register bob password1", "register")
    assert codes(client.take()) == ["registration-closed", "registration-closed"]
    client.send("/login alice password1")
    assert client.take()[0] == "OK login alice"


def test_one_account_on_two_connections(chat: Chat) -> None:
    first = chat.in_room("alice")
    second = chat.user("alice", register=False)
    second.send("/join general")
    assert first.take() == []  # the same user: no JOIN
    second.take()
    second.send("hi")
    assert first.take() == second.take()


# The guided dialog


def test_guided_login(chat: Chat) -> None:
    chat.user("alice")
    client = chat.connect()
    client.take()
    client.send("login")
    assert client.take() == ["PROMPT username :user name:"]
    client.send("alice")
    assert client.take() == ["PROMPT password :password:"]
    client.send("password1")
    assert client.take() == ["OK login alice", "ROOM general 0", "END rooms"]


def test_guided_register_reasks_after_a_mistake(chat: Chat) -> None:
    chat.user("alice")
    client = chat.connect()
    client.take()
    client.send("Register", "bad name", "ALICE", "bob")
    assert client.take() == [
        "PROMPT username :user name:",
        "ERR bad-name :names are 1 to 32 of A-Z a-z 0-9 _ -",
        "PROMPT username :user name:",
        "ERR name-taken :ALICE is taken",
        "PROMPT username :user name:",
        "PROMPT password :password:",
    ]
    client.send("short")
    assert client.take() == [
        "ERR weak-password :passwords are 8 to 128 characters",
        "PROMPT password :password:",
    ]
    client.send("/a password")
    assert client.take()[0] == "OK register bob"
    client.send("/quit")
    client = chat.connect()
    client.send("/login bob /a password")
    assert "OK login bob" in client.take()


def test_guided_login_with_a_wrong_password_goes_back_to_auth(chat: Chat) -> None:
    client = chat.connect()
    client.send("login", "nobody", "password1")
    assert codes(client.take()) == ["bad-credentials"]
    assert client.protocol.state is State.AUTH


def test_quit_from_the_password_prompt(chat: Chat) -> None:
    client = chat.connect()
    client.send("login", "alice", "exit")
    assert client.take()[-1] == "BYE :Goodbye"
    assert client.closed


# States and errors


@pytest.mark.parametrize(
    "line, code",
    [
        ("/join general", "bad-state"),
        ("/rooms", "bad-state"),
        ("/leave", "bad-state"),
        ("hello there", "bad-state"),
        ("general", "bad-state"),
        ("/frobnicate", "unknown-command"),
        ("/login alice", "bad-syntax"),
        ("/login", "bad-syntax"),
        ("/help me", "bad-syntax"),
    ],
)
def test_errors_before_login(chat: Chat, line: str, code: str) -> None:
    client = chat.connect()
    client.take()
    client.send(line)
    assert codes(client.take()) == [code]
    assert client.protocol.state is State.AUTH
    assert not client.closed


@pytest.mark.parametrize(
    "line, code",
    [
        ("/leave", "bad-state"),
        ("/who", "bad-state"),
        ("/login alice password1", "bad-state"),
        ("two words", "bad-state"),
        ("//text", "bad-state"),
        ("/join", "bad-syntax"),
        ("/join a b", "bad-syntax"),
        ("/create", "bad-syntax"),
        ("create", "bad-syntax"),
        ("/join nowhere", "no-such-room"),
        ("nowhere", "no-such-room"),
        ("/join bad!", "bad-name"),
        ("/create GENERAL", "room-exists"),
        ("create general", "room-exists"),
        ("/create " + "r" * 33, "bad-name"),
    ],
)
def test_errors_in_the_lobby(chat: Chat, line: str, code: str) -> None:
    client = chat.user("alice")
    client.send(line)
    assert codes(client.take()) == [code]
    assert client.protocol.state is State.LOBBY


def test_help_anywhere(chat: Chat) -> None:
    client = chat.connect()
    client.take()
    client.send("/HELP")
    lines = client.take()
    assert lines[-1] == "END help"
    assert all(line.startswith("INFO :") for line in lines[:-1]) and len(lines) > 5


# Framing


def test_crlf_and_lf_both_end_lines(chat: Chat) -> None:
    client = chat.connect()
    client.take()
    client.send(b"/help\r\n", b"/help\n")
    assert client.take().count("END help") == 2


def test_stray_cr_is_bad_syntax(chat: Chat) -> None:
    client = chat.in_room("alice")
    client.send(b"a\rb\n", b"\r\r\n")
    assert codes(client.take()) == ["bad-syntax", "bad-syntax"]


def test_blank_lines_get_no_answer(chat: Chat) -> None:
    client = chat.in_room("alice")
    client.send(b"\n", b"   \t \r\n", b"\r\n")
    assert client.take() == []


def test_long_line_is_skipped_and_the_next_lines_in_the_chunk_count(chat: Chat) -> None:
    client = chat.in_room("alice")
    client.send(b"x" * 5000 + b"\nfirst\n" + b"y" * 2049 + b"\r\nsecond\n")
    lines = client.take()
    assert codes(lines) == ["line-too-long", "line-too-long"]
    assert [parse_line(line).text for line in lines if line.startswith("MSG")] == [
        "first",
        "second",
    ]
    assert not client.closed


def test_long_line_in_pieces_is_skipped_whole(chat: Chat) -> None:
    client = chat.in_room("alice")
    for _ in range(50):
        client.send(b"z" * 1000)
    client.send(b"zzz\nafter\n")
    lines = client.take()
    assert codes(lines) == ["line-too-long"]
    assert next(line for line in lines if line.startswith("MSG")).endswith(":after")


def test_longest_allowed_line(chat: Chat) -> None:
    client = chat.in_room("alice")
    client.send(b"a" * 2048 + b"\r\n", b"b" * 2048 + b"\n")
    lines = client.take()
    assert codes(lines) == []
    assert [len(parse_line(line).text or "") for line in lines] == [2048, 2048]


def test_invalid_utf8_and_binary_garbage(chat: Chat) -> None:
    other = chat.in_room("bob")
    client = chat.in_room("alice")
    other.take()
    garbage = bytes(b for b in range(256) if b != 10)
    client.send(b"\xff\xfe\xfd\n", b"\xc3\n", garbage + b"\n", b"ok\n")
    lines = client.take()
    assert codes(lines) == ["bad-encoding", "bad-encoding", "bad-syntax"]
    assert next(line for line in lines if line.startswith("MSG")).endswith(":ok")
    assert [parse_line(line).tag for line in other.take()] == ["MSG"]


def test_nul_bytes_are_text(chat: Chat) -> None:
    client = chat.in_room("alice")
    client.send(b"a\x00b\n")
    assert parse_line(client.take()[0]).text == "a\x00b"


# Rooms


def test_room_list_counts_users(chat: Chat) -> None:
    chat.in_room("alice")
    client = chat.user("bob")
    client.send("/create Zoo", "/rooms")
    lines = client.take()
    assert lines[-3:] == ["ROOM general 1", "ROOM Zoo 1", "END rooms"]


def test_create_joins_the_new_room(chat: Chat) -> None:
    client = chat.user("alice")
    client.send("create Lounge")
    assert client.take() == ["OK create Lounge", "OK join Lounge", "END history Lounge"]
    assert client.protocol.state is State.IN_ROOM
    assert (chat.data / "rooms" / "Lounge.log").exists()


def test_join_by_any_case_uses_the_created_spelling(chat: Chat) -> None:
    chat.user("alice").send("/create Lounge")
    client = chat.user("bob")
    client.send("LOUNGE")
    assert client.take() == ["OK join Lounge", "END history Lounge"]


def test_join_leave_notices(chat: Chat) -> None:
    alice = chat.in_room("alice")
    chat.clock.advance(1.5)
    bob = chat.in_room("bob")
    assert alice.take() == ["JOIN general 1970-01-01T00:00:01.500Z bob"]
    bob.send("/who")
    assert bob.take() == ["MEMBER general alice", "MEMBER general bob", "END members general"]
    bob.send("/leave")
    assert bob.take() == ["OK leave general"]
    assert alice.take() == ["PART general 1970-01-01T00:00:01.500Z bob"]
    assert bob.protocol.state is State.LOBBY


def test_joining_elsewhere_parts_the_old_room(chat: Chat) -> None:
    alice = chat.in_room("alice")
    bob = chat.in_room("bob")
    alice.take()
    bob.send("/create other")
    assert parse_line(alice.take()[0]).tag == "PART"
    bob.send("/join general")
    assert parse_line(alice.take()[0]).tag == "JOIN"


def test_quit_and_dropped_connections_part(chat: Chat) -> None:
    alice = chat.in_room("alice")
    bob = chat.in_room("bob")
    carol = chat.in_room("carol")
    alice.take()
    bob.take()
    bob.send("exit")
    assert bob.take() == ["BYE :Goodbye"]
    assert bob.closed
    carol.transport.loseConnection()
    assert [parse_line(line).args[2] for line in alice.take()] == ["bob", "carol"]
    alice.send("/who")
    assert alice.take() == ["MEMBER general alice", "END members general"]


def test_nothing_follows_bye(chat: Chat) -> None:
    alice = chat.in_room("alice")
    bob = chat.in_room("bob")
    bob.send("/quit\nstill here\n")
    alice.send("hello?")
    assert bob.take() == ["BYE :Goodbye"]


# Messages and history


def test_message_reaches_everyone_with_one_timestamp(chat: Chat) -> None:
    alice = chat.in_room("alice")
    bob = chat.in_room("bob")
    outside = chat.user("carol")
    alice.take()
    chat.clock.advance(1764046205.123)
    alice.send("hello  :) there ")
    expected = ["MSG general 2025-11-25T04:50:05.123Z alice :hello  :) there "]
    assert alice.take() == expected
    assert bob.take() == expected
    assert outside.take() == []


def test_double_slash_sends_a_slash(chat: Chat) -> None:
    alice = chat.in_room("alice")
    alice.send("//me waves")
    assert parse_line(alice.take()[0]).text == "/me waves"


def test_history_on_join_oldest_first_limited(tmp_path: Path) -> None:
    chat = Chat(tmp_path, history=3)
    alice = chat.in_room("alice")
    for i in range(5):
        chat.clock.advance(1)
        alice.send(f"m{i}")
    bob = chat.user("bob")
    bob.send("/join general")
    lines = bob.take()
    assert lines[0] == "OK join general"
    assert lines[-1] == "END history general"
    assert [(parse_line(line).args[1], parse_line(line).text) for line in lines[1:-1]] == [
        (format_timestamp(t), f"m{t - 1}") for t in (3, 4, 5)
    ]


def test_history_and_rooms_survive_a_restart(tmp_path: Path) -> None:
    chat = Chat(tmp_path)
    alice = chat.user("alice")
    alice.send("/create Keep", "kept one", "kept two")
    chat.stop()
    assert alice.take()[-1] == "BYE :server shutting down"
    again = Chat(tmp_path)
    bob = again.user("alice", register=False)
    bob.send("/rooms", "/join keep")
    lines = bob.take()
    assert "ROOM Keep 0" in lines
    assert [parse_line(line).text for line in lines if line.startswith("HISTORY")] == [
        "kept one",
        "kept two",
    ]


def test_torn_last_line_is_dropped(tmp_path: Path) -> None:
    chat = Chat(tmp_path)
    chat.in_room("alice").send("whole")
    chat.stop()
    with open(tmp_path / "rooms" / "general.log", "ab") as f:
        f.write(b"1970-01-01T00:00:00.000Z alice tor")
    again = Chat(tmp_path)
    client = again.in_room("bob")
    client.send("next")
    again.stop()
    lines = (tmp_path / "rooms" / "general.log").read_bytes().splitlines()
    assert [line.split(b" ", 2)[2] for line in lines] == [b"whole", b"next"]


def test_store_failure_is_unavailable_and_sends_nothing(chat: Chat) -> None:
    alice = chat.in_room("alice")
    bob = chat.in_room("bob")
    alice.send("stored")
    alice.take()
    bob.take()
    store = chat.store
    good = store._fds["general"]
    store._fds["general"] = os.open("/dev/full", os.O_WRONLY)
    try:
        alice.send("lost")
        assert codes(alice.take()) == ["unavailable"]
        assert bob.take() == []
    finally:
        os.close(store._fds["general"])
        store._fds["general"] = good
    alice.send("back")
    assert parse_line(bob.take()[0]).text == "back"
    carol = chat.user("carol")
    carol.send("/join general")
    assert [parse_line(line).text for line in carol.take()[1:-1]] == ["stored", "back"]


# Flow control


def test_lines_wait_while_a_login_is_checked(tmp_path: Path) -> None:
    held = HeldRunner()
    chat = Chat(tmp_path, run=held)
    client = chat.connect()
    client.take()
    client.send(b"/register alice password1\n/join general\nhi\n")
    assert client.take() == []
    held.release()
    lines = client.take()
    assert lines[0] == "OK register alice"
    assert lines[-1].startswith("MSG general ") and lines[-1].endswith(" alice :hi")


def test_hanging_up_during_login_leaves_no_ghost(tmp_path: Path) -> None:
    held = HeldRunner()
    chat = Chat(tmp_path, run=held)
    client = chat.connect()
    client.send(b"/register alice password1\n/join general\n")
    client.transport.loseConnection()
    held.release()
    assert chat.service.room_list() == [("general", 0)]
    assert chat.service.connections == set()


def test_flood_control_allows_the_promised_rate(chat: Chat) -> None:
    client = chat.in_room("alice")
    chat.clock.advance(10)
    for _ in range(20):
        client.send("burst")
    for _ in range(100):
        chat.clock.advance(0.1)
        client.send("steady")
    assert codes(client.take()) == []


def test_flood_control_limits_beyond_it(chat: Chat) -> None:
    client = chat.in_room("alice")
    chat.clock.advance(10)
    for _ in range(21):
        client.send("burst")
    lines = client.take()
    assert codes(lines) == ["rate-limited"]
    assert len(lines) == 21
    chat.clock.advance(0.1)
    client.send("again")
    assert codes(client.take()) == []


def test_shutdown_says_bye_to_everyone(chat: Chat) -> None:
    clients = [chat.connect(), chat.user("alice"), chat.in_room("bob")]
    for c in clients:
        c.take()
    chat.stop()
    for c in clients:
        assert c.take() == ["BYE :server shutting down"]
        assert c.closed
