"""
The protocol contract, line by line, against an in-memory server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from chat.interfaces import IRoomEvents, StoreUnavailable
from chat.lines import format_timestamp, parse_line
from chat.protocol import State
from chat.storage.files.rooms import FileChatStore, LocalBackend
from tests.helpers import Chat, Client, HeldRunner, temp_dir
from tests.test_guard import INVISIBLE
from tests.test_store import fsyncs
from tests.test_telnet import CJK, CTRL_C, TELNET_CJK, WILL_TIMING_MARK


def codes(lines: list[str]) -> list[str]:
    return [parse_line(line).args[0] for line in lines if line.startswith("ERR ")]


class _ChatTestCase(SynchronousTestCase):
    """
    Gives each test fresh data directories and in-memory servers on them.
    """

    def make_chat(self, **kwargs: Any) -> Chat:
        return Chat(temp_dir(self), **kwargs)


class AccountTests(_ChatTestCase):
    """
    Connecting and accounts.
    """

    def test_hello_is_the_first_line(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        self.assertEqual(
            client.take(),
            ["HELLO chatroom 1 :Welcome to chatroom. Type login or register, or /help."],
        )

    def test_register_logs_in_and_lists_rooms(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.take()
        client.send("/register alice password1")
        self.assertEqual(client.take(), ["OK register alice", "ROOM general 0", "END rooms"])
        self.assertIs(client.protocol.state, State.LOBBY)
        stored = (chat.data / "users.txt").read_text()
        self.assertTrue(stored.startswith("alice:bcrypt-sha256$2b$04$"), stored)
        self.assertNotIn("password1", stored)

    def test_login_any_case_answers_with_the_registered_spelling(self) -> None:
        chat = self.make_chat()
        chat.user("Alice")
        client = chat.connect()
        client.take()
        client.send("/LOGIN aLiCe password1")
        self.assertEqual(client.take()[0], "OK login Alice")

    def test_wrong_password_and_unknown_user_look_the_same(self) -> None:
        chat = self.make_chat()
        chat.user("alice")
        client = chat.connect()
        client.take()
        client.send("/login alice password2", "/login nobody password1")
        lines = client.take()
        self.assertEqual(codes(lines), ["bad-credentials", "bad-credentials"])
        self.assertEqual(lines[0].split(" :")[1], lines[1].split(" :")[1])
        self.assertIs(client.protocol.state, State.AUTH)
        client.send("/login alice password1")
        self.assertEqual(client.take()[0], "OK login alice")

    def test_name_taken_in_any_case(self) -> None:
        chat = self.make_chat()
        chat.user("alice")
        client = chat.connect()
        client.take()
        client.send("/register ALICE password1")
        self.assertEqual(codes(client.take()), ["name-taken"])

    def test_bad_names(self) -> None:
        for name in ["al!ce", "a" * 33, "émile", "a.b"]:
            chat = self.make_chat()
            client = chat.connect()
            client.take()
            client.send(f"/register {name} password1")
            self.assertEqual(codes(client.take()), ["bad-name"], f"name={name!r}")

    def test_weak_passwords(self) -> None:
        for password in ["short77", "x" * 129]:
            case = f"password={password!r}"
            chat = self.make_chat()
            client = chat.connect()
            client.take()
            client.send(f"/register alice {password}")
            self.assertEqual(codes(client.take()), ["weak-password"], case)
            self.assertFalse((chat.data / "users.txt").exists(), case)

    def test_every_character_of_a_long_password_counts(self) -> None:
        chat = self.make_chat()
        base = "é" * 100  # 200 bytes: bcrypt alone would stop at 72
        chat.user("alice", base + "a" * 28)
        client = chat.connect()
        client.send(f"/login alice {base}{'a' * 27}b")
        self.assertEqual(codes(client.take()), ["bad-credentials"])
        client.send(f"/login alice {base}{'a' * 28}")
        self.assertEqual(client.take()[0], "OK login alice")

    def test_password_is_everything_after_the_name(self) -> None:
        chat = self.make_chat()
        chat.user("alice", " two words ")
        client = chat.connect()
        client.send("/login alice two words ")
        self.assertEqual(codes(client.take()), ["bad-credentials"])
        client.send("/login alice  two words ")
        self.assertIn("OK login alice", client.take())

    def test_registration_closed_without_an_account_store(self) -> None:
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"password1")
        chat = self.make_chat(checker=checker)
        client = chat.connect()
        client.take()
        client.send("/register bob password1", "register")
        self.assertEqual(codes(client.take()), ["registration-closed", "registration-closed"])
        client.send("/login alice password1")
        self.assertEqual(client.take()[0], "OK login alice")

    def test_one_account_on_two_connections(self) -> None:
        chat = self.make_chat()
        first = chat.in_room("alice")
        second = chat.user("alice", register=False)
        second.send("/join general")
        self.assertEqual(first.take(), [])  # the same user: no JOIN
        second.take()
        second.send("hi")
        self.assertEqual(first.take(), second.take())


class GuidedDialogTests(_ChatTestCase):
    """
    The guided dialog.
    """

    def test_guided_register_ends_in_the_lobby(self) -> None:
        # Found by fuzzing: with an account store that answers at once, the
        # dialog once left a logged-in connection in AUTH.
        chat = self.make_chat()
        client = chat.connect()
        client.send("register", "carol", "password1", "/rooms")
        self.assertEqual(client.take()[-2:], ["ROOM general 0", "END rooms"])
        self.assertIs(client.protocol.state, State.LOBBY)

    def test_guided_login(self) -> None:
        chat = self.make_chat()
        chat.user("alice")
        client = chat.connect()
        client.take()
        client.send("login")
        self.assertEqual(client.take(), ["PROMPT username :user name:"])
        client.send("alice")
        self.assertEqual(client.take(), ["PROMPT password :password:"])
        client.send("password1")
        self.assertEqual(client.take(), ["OK login alice", "ROOM general 0", "END rooms"])

    def test_guided_register_reasks_after_a_mistake(self) -> None:
        chat = self.make_chat()
        chat.user("alice")
        client = chat.connect()
        client.take()
        client.send("Register", "bad name", "ALICE", "bob")
        self.assertEqual(
            client.take(),
            [
                "PROMPT username :user name:",
                "ERR bad-name :names are 1 to 32 of A-Z a-z 0-9 _ -",
                "PROMPT username :user name:",
                "ERR name-taken :ALICE is taken",
                "PROMPT username :user name:",
                "PROMPT password :password:",
            ],
        )
        client.send("short")
        self.assertEqual(
            client.take(),
            [
                "ERR weak-password :passwords are 8 to 128 characters",
                "PROMPT password :password:",
            ],
        )
        client.send("/a password")
        self.assertEqual(client.take()[0], "OK register bob")
        client.send("/quit")
        client = chat.connect()
        client.send("/login bob /a password")
        self.assertIn("OK login bob", client.take())

    def test_guided_login_with_a_wrong_password_goes_back_to_auth(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.send("login", "nobody", "password1")
        self.assertEqual(codes(client.take()), ["bad-credentials"])
        self.assertIs(client.protocol.state, State.AUTH)

    def test_quit_from_the_password_prompt(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.send("login", "alice", "exit")
        self.assertEqual(client.take()[-1], "BYE :Goodbye")
        self.assertTrue(client.closed)


class StateErrorTests(_ChatTestCase):
    """
    States and errors.
    """

    def test_errors_before_login(self) -> None:
        for line, code in [
            ("/join general", "bad-state"),
            ("/rooms", "bad-state"),
            ("/leave", "bad-state"),
            ("hello there", "bad-state"),
            ("general", "bad-state"),
            ("/frobnicate", "unknown-command"),
            ("/login alice", "bad-syntax"),
            ("/login", "bad-syntax"),
            ("/help me", "bad-syntax"),
        ]:
            case = f"line={line!r}, code={code!r}"
            chat = self.make_chat()
            client = chat.connect()
            client.take()
            client.send(line)
            self.assertEqual(codes(client.take()), [code], case)
            state = client.protocol.state
            self.assertIs(state, State.AUTH, f"{case}: {state!r} is not {State.AUTH!r}")
            self.assertFalse(client.closed, case)

    def test_errors_in_the_lobby(self) -> None:
        for line, code in [
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
        ]:
            case = f"line={line!r}, code={code!r}"
            chat = self.make_chat()
            client = chat.user("alice")
            client.send(line)
            self.assertEqual(codes(client.take()), [code], case)
            state = client.protocol.state
            self.assertIs(state, State.LOBBY, f"{case}: {state!r} is not {State.LOBBY!r}")

    def test_help_anywhere(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.take()
        client.send("/HELP")
        lines = client.take()
        self.assertEqual(lines[-1], "END help")
        self.assertTrue(all(line.startswith("INFO :") for line in lines[:-1]), lines)
        self.assertGreater(len(lines), 5, lines)


class FramingTests(_ChatTestCase):
    """
    Framing.
    """

    def test_crlf_and_lf_both_end_lines(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.take()
        client.send(b"/help\r\n", b"/help\n")
        self.assertEqual(client.take().count("END help"), 2)

    def test_stray_cr_is_bad_syntax(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        client.send(b"a\rb\n", b"\r\r\n")
        self.assertEqual(codes(client.take()), ["bad-syntax", "bad-syntax"])

    def test_blank_lines_get_no_answer(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        client.send(b"\n", b"   \t \r\n", b"\r\n")
        self.assertEqual(client.take(), [])

    def test_other_white_space_is_not_blank(self) -> None:
        # Found by fuzzing: these once raised IndexError out of dataReceived.
        chat = self.make_chat()
        anonymous = chat.connect()
        anonymous.take()
        lobby = chat.user("alice")
        for line in ("\x0b", "\u00a0", "\u2028", "\x85", "\u3000 \t"):
            anonymous.send(line)
            lobby.send(line)
        self.assertEqual(codes(anonymous.take()), ["bad-state"] * 5)
        self.assertEqual(codes(lobby.take()), ["bad-state"] * 5)
        self.assertFalse(anonymous.closed or lobby.closed)

    def test_long_line_is_skipped_and_the_next_lines_in_the_chunk_count(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        client.send(b"x" * 5000 + b"\nfirst\n" + b"y" * 2049 + b"\r\nsecond\n")
        lines = client.take()
        self.assertEqual(codes(lines), ["line-too-long", "line-too-long"])
        self.assertEqual(
            [parse_line(line).text for line in lines if line.startswith("MSG")],
            ["first", "second"],
        )
        self.assertFalse(client.closed)

    def test_long_line_in_pieces_is_skipped_whole(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        for _ in range(50):
            client.send(b"z" * 1000)
        client.send(b"zzz\nafter\n")
        lines = client.take()
        self.assertEqual(codes(lines), ["line-too-long"])
        message = next(line for line in lines if line.startswith("MSG"))
        self.assertTrue(message.endswith(":after"), message)

    def test_longest_allowed_line(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        client.send(b"a" * 2048 + b"\r\n", b"b" * 2048 + b"\n")
        lines = client.take()
        self.assertEqual(codes(lines), [])
        self.assertEqual([len(parse_line(line).text or "") for line in lines], [2048, 2048])

    def test_invalid_utf8_and_binary_garbage(self) -> None:
        chat = self.make_chat()
        other = chat.in_room("bob")
        client = chat.in_room("alice")
        other.take()
        # No 0xFF: that byte starts a telnet command (TelnetTests).
        garbage = bytes(b for b in range(255) if b != 10)
        client.send(b"\xfe\xfd\xfc\n", b"\xc3\n", garbage + b"\n", b"ok\n")
        lines = client.take()
        self.assertEqual(codes(lines), ["bad-encoding", "bad-encoding", "bad-syntax"])
        message = next(line for line in lines if line.startswith("MSG"))
        self.assertTrue(message.endswith(":ok"), message)
        self.assertEqual([parse_line(line).tag for line in other.take()], ["MSG"])

    def test_control_characters_never_reach_the_room(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        client = chat.in_room("alice")
        bob.take()
        client.send(
            b"a\x00b\x07c\td\n",
            b"\x1b[2J\x1b[31mred\x1b[0m \x1b]0;title\x07done\n",
            "\u202eevil\u202c \u2066iso\u2069 caf\u00e9 \u2764\ufe0f\n".encode(),
            b"\x1b\x07\x00\n",
        )
        lines = bob.take()
        texts = [parse_line(line).text for line in lines]
        self.assertEqual(texts, ["abc\td", "red done", "evil iso caf\u00e9 \u2764\ufe0f"])
        # The sender sees what everyone else sees, and nothing for the line
        # that was all control characters.
        self.assertEqual(client.take(), lines)


class TelnetTests(_ChatTestCase):
    """
    What real telnet sends besides lines: commands starting with byte 0xFF.
    """

    def raw(self, client: Client) -> bytes:
        client.protocol.factory.clock.advance(0)
        data: bytes = client.transport.value()
        client.transport.clear()
        return data

    def test_ctrl_c_abandons_the_line_and_telnet_hears_again(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        alice = chat.in_room("alice")
        bob.take()
        # telnet sends Ctrl-C as IAC IP IAC DO TIMING-MARK, then discards
        # all it receives until the timing mark is answered.
        alice.send(b"half a li", b"ne" + CTRL_C)
        self.assertEqual(self.raw(alice), WILL_TIMING_MARK)
        alice.send(b"/help\n")
        self.assertEqual(alice.take()[-1], "END help")
        self.assertEqual(bob.take(), [])

    def test_ctrl_c_keeps_the_lines_that_ended_before_it(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        alice.send(b"one\nhalf" + CTRL_C + b"two\n")
        out = self.raw(alice)
        self.assertTrue(out.startswith(WILL_TIMING_MARK), out)
        lines = out[len(WILL_TIMING_MARK) :].decode().splitlines()
        self.assertEqual([parse_line(line).text for line in lines], ["one", "two"])

    def test_ctrl_c_while_a_login_is_checked(self) -> None:
        held = HeldRunner()
        chat = self.make_chat(run=held)
        client = chat.connect()
        client.take()
        client.send(b"/register alice password1\n/join general\nhal" + CTRL_C)
        self.assertEqual(self.raw(client), WILL_TIMING_MARK)
        held.release()
        self.assertEqual(client.take()[-1], "END history general")

    def test_a_command_cut_across_reads(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        data = b"gone" + CTRL_C + b"/he\xff\xfa\x18\x00xterm\xff\xf0lp\n"
        for i in range(len(data)):
            alice.send(data[i : i + 1])
        out = self.raw(alice)
        self.assertTrue(out.startswith(WILL_TIMING_MARK), out)
        self.assertEqual(out[len(WILL_TIMING_MARK) :].decode().split("\n")[-2], "END help")

    def test_cjk_text_mangled_by_telnet(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        alice = chat.in_room("alice")
        bob.take()
        alice.send(TELNET_CJK)
        self.assertEqual(self.raw(alice).count(WILL_TIMING_MARK), 3)
        self.assertEqual([parse_line(line).text for line in bob.take()], [CJK])

    def test_a_literal_ff_and_subnegotiations_are_no_part_of_a_line(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        alice = chat.in_room("alice")
        bob.take()
        # telnet doubles a 0xFF byte (IAC IAC); UTF-8 never holds one.
        alice.send("caf\u00e9 \u4f60".encode() + b"\xff\xff\xe5\xa5\xbd\n")
        alice.send(b"a\xff\xfa\x18\x00xterm\xff\xf0b\n")
        # Any other invalid UTF-8 is still refused.
        alice.send(b"\xfe\xfd\n", b"\xc3(\n", b"\xed\xa0\x80\n")
        self.assertEqual(codes(alice.take()), ["bad-encoding"] * 3)
        self.assertEqual(
            [parse_line(line).text for line in bob.take()], ["caf\u00e9 \u4f60\u597d", "ab"]
        )
        self.assertEqual(self.raw(alice).count(b"\xff"), 0)

    def test_options_are_refused_and_refusals_not_answered(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.take()
        client.send(b"\xff\xfd\x1f\xff\xfb\x01\xff\xfc\x03\xff\xfe\x05")
        self.assertEqual(self.raw(client), b"\xff\xfc\x1f\xff\xfe\x01")

    def test_a_client_that_sends_no_telnet_never_gets_any(self) -> None:
        chat = self.make_chat()
        nc = chat.in_room("bob")
        telnet = chat.in_room("alice")
        telnet.send(b"hi\n" + CTRL_C + b"\xff\xfd\x01/who\n")
        nc.send(b"/who\n", b"\xfe\xc3\n", b"x" * 3000 + b"\n", b"/help\n", b"bye\n")
        self.assertIn(WILL_TIMING_MARK, self.raw(telnet))
        out = self.raw(nc)
        self.assertNotIn(b"\xff", out)
        self.assertIn(b"MSG general ", out)


class CleanedCommandTests(_ChatTestCase):
    """
    A line is cleaned before it is classified: a control character in front
    of a command does not make it a message.
    """

    def test_in_a_room(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        alice = chat.in_room("alice")
        bob.take()
        alice.send("\x07/who", "\x1b[31m//slash", "\x07\x1b[2J/leave")
        self.assertEqual(
            alice.take()[:3], ["MEMBER general bob", "MEMBER general alice", "END members general"]
        )
        said = bob.take()
        self.assertEqual([parse_line(line).tag for line in said], ["MSG", "PART"])
        self.assertEqual(parse_line(said[0]).text, "/slash")
        self.assertIs(alice.protocol.state, State.LOBBY)
        alice.send("general", "\x07exit")
        self.assertEqual(alice.take()[-1], "BYE :Goodbye")

    def test_in_the_lobby(self) -> None:
        chat = self.make_chat()
        alice = chat.user("alice")
        alice.send("\x07/rooms", "\x1b[Ageneral", "\x07/leave", "\x07create Lounge", "\x07/who")
        self.assertEqual(
            alice.take(),
            [
                "ROOM general 0",
                "END rooms",
                "OK join general",
                "END history general",
                "OK leave general",
                "OK create Lounge",
                "OK join Lounge",
                "END history Lounge",
                "MEMBER Lounge alice",
                "END members Lounge",
            ],
        )

    def test_before_login(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.take()
        client.send("\x07/register alice password1")
        self.assertEqual(client.take()[0], "OK register alice")
        other = chat.connect()
        other.take()
        other.send("\x07login", "\x07alice", "\x07/quit")
        self.assertEqual(
            other.take(),
            ["PROMPT username :user name:", "PROMPT password :password:", "BYE :Goodbye"],
        )

    def test_passwords_stay_as_typed(self) -> None:
        chat = self.make_chat()
        client = chat.connect()
        client.send("register", "\x07alice", "pass\x07word1")
        self.assertEqual(client.take()[-3], "OK register alice")
        for line in ("\x07/login alice pass\x07word1", "/login alice pass\x07word1"):
            client = chat.connect()
            client.send(line)
            self.assertIn("OK login alice", client.take(), repr(line))
        client = chat.connect()
        client.send("\x07/login alice password1")
        self.assertEqual(codes(client.take()), ["bad-credentials"])


#: The HTTP request of issue 10: a web page can make a browser send it.
WEB_SPAM = (
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 62\r\n\r\n"
    b"/register webspam password123\n/join general\nhello from a web page\n"
)


class HTTPTests(_ChatTestCase):
    """
    A connection that speaks HTTP is closed before any of it runs.
    """

    def test_a_web_page_cannot_register_or_post(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        client = chat.connect(lingering=True)
        client.take()
        with capturedLogs() as events:
            client.send(WEB_SPAM)
        self.assertEqual(client.transport.value(), b"")
        self.assertTrue(client.closed)
        self.assertIs(client.protocol.state, State.CLOSED)
        self.assertNotIn("webspam", (chat.data / "users.txt").read_text())
        self.assertEqual(bob.take(), [])
        warned = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warned), 1, events)
        self.assertEqual(warned[0]["peer"], "127.0.0.1:40000")

    def test_request_lines(self) -> None:
        for line in (
            "GET /x HTTP/1.0",
            "OPTIONS * HTTP/1.1",
            "PRI * HTTP/2.0",
            "PUT /a?b=c HTTP/1.1",
        ):
            chat = self.make_chat()
            client = chat.connect()
            client.take()
            client.send(line.encode() + b"\r\n/help\n")
            self.assertEqual(client.take(), [], line)
            self.assertTrue(client.closed, line)

    def test_headers_before_login(self) -> None:
        for lines in (["Host: x"], ["login", "user-agent: curl/8"], ["Origin: http://a"]):
            chat = self.make_chat()
            client = chat.connect()
            client.take()
            client.send(*lines)
            self.assertTrue(client.closed, lines)
        # A password is anything; after login, a header is just a message.
        chat = self.make_chat()
        chat.user("alice", "Host: abcdef")
        client = chat.connect()
        client.send("login", "alice", "Host: abcdef", "/join general", "Host: x")
        self.assertTrue(client.take()[-1].endswith(" alice :Host: x"))
        self.assertFalse(client.closed)

        # Nor is anything that merely resembles HTTP.
        client = chat.connect()
        client.take()
        client.send("GET / HTTP", "get / http/1.1", "Hostname: x", "host")
        self.assertEqual(codes(client.take()), ["bad-state"] * 4)
        self.assertFalse(client.closed)


class InvisibleMessageTests(_ChatTestCase):
    """
    A message with nothing visible in it is dropped like a blank line.
    """

    def test_invisible_messages_are_dropped(self) -> None:
        chat = self.make_chat()
        bob = chat.in_room("bob")
        alice = chat.in_room("alice")
        bob.take()
        for char in INVISIBLE:
            alice.send(char, f" {char}{char}\t")
            chat.clock.advance(1)
        self.assertEqual(alice.take(), [])
        self.assertEqual(bob.take(), [])
        # Messages with visible text keep them.
        texts = [
            "\u200f\u05e9\u05dc\u05d5\u05dd",  # Hebrew after a right-to-left mark
            "\u0645\u0631\u062d\u0628\u0627\u061c 42",  # Arabic, an Arabic letter mark
            "\U0001f469\u200d\U0001f4bb",  # an emoji ZWJ sequence
            "\u2764\ufe0f",
            "a\u00a0b\u3000c\u200bd\u2060e\ufeff",
        ]
        alice.send(*texts)
        self.assertEqual([parse_line(line).text for line in bob.take()], texts)


class SilentConnectionTests(_ChatTestCase):
    """
    Connections that never send a byte (a load balancer's health check)
    are counted, and the count logged once an hour; the others are logged
    as before.
    """

    def connection_lines(self, events: list[Any]) -> list[str]:
        return [
            e["log_format"]
            for e in events
            if "Connection" in e["log_format"]
            or "connections" in e["log_format"]
            or "in time" in e["log_format"]
        ]

    def test_silent_connections_are_counted(self) -> None:
        chat = self.make_chat()
        with capturedLogs() as events:
            client = chat.connect()
            client.transport.loseConnection()
        # The first is named, with a word on what happens to the next ones.
        [first] = self.connection_lines(events)
        self.assertIn("closed without sending anything", first)
        self.assertEqual(events[-1]["peer"], "127.0.0.1:40000")
        # A health check every 5 s for an hour: not one line until the hour
        # is over, then one line with the count.
        with capturedLogs() as events:
            for _ in range(719):
                chat.clock.advance(5)
                chat.connect().transport.loseConnection()
        self.assertEqual(self.connection_lines(events), [])
        with capturedLogs() as events:
            chat.clock.advance(5)
            chat.connect().transport.loseConnection()
        [summary] = self.connection_lines(events)
        self.assertIn("closed without sending anything in the last", summary)
        self.assertEqual(events[-1]["count"], 720)
        self.assertEqual(events[-1]["minutes"], 60)
        # Nor does a login timeout make a line of its own.
        with capturedLogs() as events:
            client = chat.connect()
            chat.clock.advance(60)
        self.assertTrue(client.closed)
        self.assertEqual(self.connection_lines(events), [])

    def test_a_connection_that_speaks_is_logged(self) -> None:
        chat = self.make_chat()
        with capturedLogs() as events:
            client = chat.connect()
            client.send("/help")
            client.transport.loseConnection()
        self.assertEqual(
            self.connection_lines(events),
            ["Connection from {peer}", "Connection from {peer} closed ({user})"],
        )
        self.assertEqual(events[-1]["peer"], "127.0.0.1:40000")


class RoomTests(_ChatTestCase):
    """
    Rooms.
    """

    def test_room_list_counts_users(self) -> None:
        chat = self.make_chat()
        chat.in_room("alice")
        client = chat.user("bob")
        client.send("/create Zoo", "/rooms")
        lines = client.take()
        self.assertEqual(lines[-3:], ["ROOM general 1", "ROOM Zoo 1", "END rooms"])

    def test_create_joins_the_new_room(self) -> None:
        chat = self.make_chat()
        client = chat.user("alice")
        client.send("create Lounge")
        self.assertEqual(
            client.take(), ["OK create Lounge", "OK join Lounge", "END history Lounge"]
        )
        self.assertIs(client.protocol.state, State.IN_ROOM)
        self.assertTrue((chat.data / "rooms" / "Lounge.log").exists())

    def test_join_by_any_case_uses_the_created_spelling(self) -> None:
        chat = self.make_chat()
        chat.user("alice").send("/create Lounge")
        client = chat.user("bob")
        client.send("LOUNGE")
        self.assertEqual(client.take(), ["OK join Lounge", "END history Lounge"])

    def test_join_leave_notices(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        chat.clock.advance(1.5)
        bob = chat.in_room("bob")
        self.assertEqual(alice.take(), ["JOIN general 1970-01-01T00:00:01.500Z bob"])
        bob.send("/who")
        self.assertEqual(
            bob.take(), ["MEMBER general alice", "MEMBER general bob", "END members general"]
        )
        bob.send("/leave")
        self.assertEqual(bob.take(), ["OK leave general"])
        self.assertEqual(alice.take(), ["PART general 1970-01-01T00:00:01.500Z bob"])
        self.assertIs(bob.protocol.state, State.LOBBY)

    def test_joining_elsewhere_parts_the_old_room(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        bob = chat.in_room("bob")
        alice.take()
        bob.send("/create other")
        self.assertEqual(parse_line(alice.take()[0]).tag, "PART")
        bob.send("/join general")
        self.assertEqual(parse_line(alice.take()[0]).tag, "JOIN")

    def test_quit_and_dropped_connections_part(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        bob = chat.in_room("bob")
        carol = chat.in_room("carol")
        alice.take()
        bob.take()
        bob.send("exit")
        self.assertEqual(bob.take(), ["BYE :Goodbye"])
        self.assertTrue(bob.closed)
        carol.transport.loseConnection()
        self.assertEqual([parse_line(line).args[2] for line in alice.take()], ["bob", "carol"])
        alice.send("/who")
        self.assertEqual(alice.take(), ["MEMBER general alice", "END members general"])

    def test_nothing_follows_bye(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        bob = chat.in_room("bob")
        bob.send("/quit\nstill here\n")
        alice.send("hello?")
        self.assertEqual(bob.take(), ["BYE :Goodbye"])


class MessageHistoryTests(_ChatTestCase):
    """
    Messages and history.
    """

    def test_message_reaches_everyone_with_one_timestamp(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        bob = chat.in_room("bob")
        outside = chat.user("carol")
        alice.take()
        chat.clock.advance(1764046205.123)
        alice.send("hello  :) there ")
        expected = ["MSG general 2025-11-25T04:50:05.123Z alice :hello  :) there "]
        self.assertEqual(alice.take(), expected)
        self.assertEqual(bob.take(), expected)
        self.assertEqual(outside.take(), [])

    def test_double_slash_sends_a_slash(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        alice.send("//me waves")
        self.assertEqual(parse_line(alice.take()[0]).text, "/me waves")

    def test_history_on_join_oldest_first_limited(self) -> None:
        chat = self.make_chat(history=3)
        alice = chat.in_room("alice")
        for i in range(5):
            chat.clock.advance(1)
            alice.send(f"m{i}")
        bob = chat.user("bob")
        bob.send("/join general")
        lines = bob.take()
        self.assertEqual(lines[0], "OK join general")
        self.assertEqual(lines[-1], "END history general")
        self.assertEqual(
            [(parse_line(line).args[1], parse_line(line).text) for line in lines[1:-1]],
            [(format_timestamp(t), f"m{t - 1}") for t in (3, 4, 5)],
        )

    def test_history_and_rooms_survive_a_restart(self) -> None:
        tmp_path = temp_dir(self)
        chat = Chat(tmp_path)
        alice = chat.user("alice")
        alice.send("/create Keep", "kept one", "kept two")
        chat.stop()
        self.assertEqual(alice.take()[-1], "BYE :server shutting down")
        again = Chat(tmp_path)
        bob = again.user("alice", register=False)
        bob.send("/rooms", "/join keep")
        lines = bob.take()
        self.assertIn("ROOM Keep 0", lines)
        self.assertEqual(
            [parse_line(line).text for line in lines if line.startswith("HISTORY")],
            ["kept one", "kept two"],
        )

    def test_torn_last_line_is_dropped(self) -> None:
        tmp_path = temp_dir(self)
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
        self.assertEqual([line.split(b" ", 2)[2] for line in lines], [b"whole", b"next"])

    def test_store_failure_is_unavailable_and_sends_nothing(self) -> None:
        chat = self.make_chat()
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
            self.assertEqual(codes(alice.take()), ["unavailable"])
            # /dev/full cannot be truncated either, so the store also logs
            # that it could not take the failed append back.
            self.flushLoggedErrors(OSError)
            self.assertEqual(bob.take(), [])
        finally:
            os.close(store._fds["general"])
            store._fds["general"] = good
        alice.send("back")
        self.assertEqual(parse_line(bob.take()[0]).text, "back")
        carol = chat.user("carol")
        carol.send("/join general")
        self.assertEqual([parse_line(line).text for line in carol.take()[1:-1]], ["stored", "back"])


class DurabilityTests(_ChatTestCase):
    def test_messages_are_fsynced_every_few_seconds(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        with fsyncs() as synced:
            chat.clock.advance(5)
            self.assertEqual(synced, [])
            client.send("keep me")
            chat.clock.advance(5)
            self.assertEqual(synced, ["general.log"])
            chat.clock.advance(5)
            self.assertEqual(len(synced), 1)


class FlowControlTests(_ChatTestCase):
    """
    Flow control.
    """

    def assert_restart(self, lines: list[str]) -> None:
        """
        What a connection hears when the server stops: when to come back
        (a restart's clients are spread over five seconds), then BYE.
        """
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"\ARECONNECT [1-5]\Z")
        self.assertEqual(lines[1], "BYE :server shutting down")

    def test_lines_wait_while_a_login_is_checked(self) -> None:
        held = HeldRunner()
        chat = self.make_chat(run=held)
        client = chat.connect()
        client.take()
        client.send(b"/register alice password1\n/join general\nhi\n")
        self.assertEqual(client.take(), [])
        held.release()
        lines = client.take()
        self.assertEqual(lines[0], "OK register alice")
        self.assertTrue(lines[-1].startswith("MSG general "), lines[-1])
        self.assertTrue(lines[-1].endswith(" alice :hi"), lines[-1])

    def test_hanging_up_during_login_leaves_no_ghost(self) -> None:
        held = HeldRunner()
        chat = self.make_chat(run=held)
        client = chat.connect()
        client.send(b"/register alice password1\n/join general\n")
        client.transport.loseConnection()
        held.release()
        self.assertEqual(chat.service.room_list(), [("general", 0)])
        self.assertEqual(chat.service.connections, set())

    def test_nothing_follows_a_shutdown_bye_during_login(self) -> None:
        chat = self.make_chat()
        chat.user("alice")
        chat.checker.run = held = HeldRunner()
        client = chat.connect(lingering=True)
        client.send("/login alice password1", "general")
        other = chat.connect(lingering=True)
        other.send("/register bob password1")
        client.take()
        other.take()
        chat.stop()
        held.release()
        for c in (client, other):
            self.assert_restart(c.take())
            self.assertTrue(c.closed)
        self.assertEqual(chat.service.room_list(), [("general", 0)])

    def test_nothing_follows_bye_during_room_creation(self) -> None:
        chat = self.make_chat()
        client = chat.user("alice")
        chat.store._run = held = HeldRunner()
        client.send("/create Later", "/quit")
        self.assertEqual(client.take(), [])
        chat.stop()
        held.release()
        self.assert_restart(client.take())

    def test_flood_control_allows_the_promised_rate(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        chat.clock.advance(10)
        for _ in range(20):
            client.send("burst")
        for _ in range(100):
            chat.clock.advance(0.1)
            client.send("steady")
        self.assertEqual(codes(client.take()), [])

    def test_flood_control_limits_beyond_it(self) -> None:
        chat = self.make_chat()
        client = chat.in_room("alice")
        chat.clock.advance(10)
        for _ in range(21):
            client.send("burst")
        lines = client.take()
        self.assertEqual(codes(lines), ["rate-limited"])
        self.assertEqual(len(lines), 21)
        chat.clock.advance(0.1)
        client.send("again")
        self.assertEqual(codes(client.take()), [])

    def test_shutdown_says_bye_to_everyone(self) -> None:
        chat = self.make_chat()
        clients = [chat.connect(), chat.user("alice"), chat.in_room("bob")]
        for c in clients:
            c.take()
        chat.stop()
        for i, c in enumerate(clients):
            self.assert_restart(c.take())
            self.assertTrue(c.closed, f"client {i}")


class LateBackend(LocalBackend):
    """
    The file store's backend, with rooms that are loaded when the test
    says so, as from a Redis that answers late.
    """

    def __init__(self, data: Path) -> None:
        super().__init__(FileChatStore(data, run=maybeDeferred), Clock(), sync_interval=0)
        self.loaded: Deferred[None] = Deferred()

    def start(self, events: IRoomEvents) -> Deferred[None]:
        self.events = events
        return self.loaded

    def load(self) -> None:
        assert self.events is not None
        super().start(self.events).chainDeferred(self.loaded)


STARTING = "ERR unavailable :starting up; try again shortly"


class StartingUpTests(_ChatTestCase):
    """
    Connections made before the rooms are loaded are greeted and told to
    come back, not left waiting.
    """

    def test_every_line_is_answered_until_the_server_is_ready(self) -> None:
        backend = LateBackend(temp_dir(self))
        chat = self.make_chat(backend=backend)
        self.assertFalse(chat.service.ready.called)
        client = chat.connect()
        self.assertEqual(parse_line(client.take()[0]).tag, "HELLO")
        lines = ["login", "register", "/register alice password1", "/help", "/rooms", "hello"]
        client.send(*lines)
        self.assertEqual(client.take(), [STARTING] * len(lines))
        backend.load()
        client.send("/register alice password1")
        self.assertEqual(client.take(), ["OK register alice", "ROOM general 0", "END rooms"])

    def test_quit_and_exit_still_leave(self) -> None:
        chat = self.make_chat(backend=LateBackend(temp_dir(self)))
        for line in ("/quit", "exit", "/QUIT"):
            client = chat.connect()
            client.take()
            client.send(line)
            self.assertEqual(client.take(), ["BYE :Goodbye"])
            self.assertTrue(client.closed)


class FailingChecker:
    """
    An account store that is unavailable (or buggy) while C{error} is set.
    """

    credentialInterfaces = InMemoryUsernamePasswordDatabaseDontUse.credentialInterfaces

    def __init__(self) -> None:
        self.error: Exception | None = StoreUnavailable("connection refused")
        self.accounts = InMemoryUsernamePasswordDatabaseDontUse(alice=b"password1")

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        if self.error is not None:
            return fail(self.error)
        return self.accounts.requestAvatarId(credentials)  # type: ignore[no-any-return]

    def user_exists(self, name: str) -> bool:
        return False

    def add_user(self, name: str, password: str) -> Deferred[None]:
        if self.error is not None:
            return fail(self.error)
        self.accounts.addUser(name.encode(), password.encode())
        return succeed(None)


def warnings(events: Sequence[dict[str, Any]]) -> list[str]:
    return [formatEvent(e) for e in events if e["log_level"] >= LogLevel.warn]


class OutageLogTests(_ChatTestCase):
    """
    A store outage is said once when it starts and once when it ends,
    however much it refused meanwhile.
    """

    def test_many_refused_batches_make_one_warning_and_one_end(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        with capturedLogs() as events:
            with mock.patch.object(chat.store, "append", side_effect=StoreUnavailable("disk full")):
                for i in range(50):
                    # One batch each: the turn ends in take().  Slowly
                    # enough for flood control.
                    chat.clock.advance(1)
                    alice.send(f"lost {i}")
                    self.assertEqual(codes(alice.take()), ["unavailable"])
            alice.send("back")
            alice.take()
            alice.send("and again")
            alice.take()
        self.assertEqual(
            warnings(events),
            [
                "Storage unavailable: cannot store messages (disk full); "
                "senders get ERR unavailable",
                "Storage available again; 50 messages were refused meanwhile",
            ],
        )
        self.assertFalse([e for e in events if "log_failure" in e])

    def test_logins_and_registrations_warn_once_without_a_traceback(self) -> None:
        checker = FailingChecker()
        chat = self.make_chat(checker=checker)
        client = chat.connect()
        client.take()
        with capturedLogs() as events:
            for _ in range(3):
                client.send("/login alice password1")
                self.assertEqual(codes(client.take()), ["unavailable"])
            for _ in range(2):
                client.send("/register bob password1")
                self.assertEqual(codes(client.take()), ["unavailable"])
            checker.error = None
            client.send("/login alice password1")
            self.assertEqual(client.take()[0], "OK login alice")
        self.assertEqual(
            warnings(events),
            [
                "Storage unavailable: cannot check logins (connection refused); "
                "users get ERR unavailable",
                "Storage unavailable: cannot add accounts (connection refused); "
                "users get ERR unavailable",
                "Storage available again; 3 logins, 2 registrations were refused meanwhile",
            ],
        )
        self.assertFalse([e for e in events if "log_failure" in e])

    def test_one_refused_message(self) -> None:
        chat = self.make_chat()
        alice = chat.in_room("alice")
        with capturedLogs() as events:
            with mock.patch.object(chat.store, "append", side_effect=StoreUnavailable("full")):
                alice.send("lost")
                alice.take()
            alice.send("back")
            alice.take()
        self.assertEqual(
            warnings(events)[-1], "Storage available again; 1 message was refused meanwhile"
        )

    def test_a_bug_is_still_logged_with_its_traceback(self) -> None:
        checker = FailingChecker()
        checker.error = RuntimeError("a bug")
        chat = self.make_chat(checker=checker)
        client = chat.connect()
        client.take()
        with capturedLogs() as events:
            client.send("/login alice password1", "/register bob password1")
            self.assertEqual(codes(client.take()), ["unavailable", "unavailable"])
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(
            [formatEvent(e) for e in failures],
            ["Login as alice failed", "Registration failed"],
        )
        self.assertEqual({e["log_level"] for e in failures}, {LogLevel.critical})
        self.flushLoggedErrors(RuntimeError)
