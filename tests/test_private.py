"""
Private messages, unread messages at login, paging back through history
and ignore lists: the protocol contract, line by line, against an
in-memory server on the file store.
"""

from __future__ import annotations

import errno
import os
from typing import Any
from unittest import mock

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from chat.guard import Limits
from chat.lines import parse_line
from chat.message import format_timestamp
from tests.helpers import Chat, Client, temp_dir


def stamp_of(line: str) -> str:
    return parse_line(line).args[1]


def texts(lines: list[str]) -> list[str]:
    return [parse_line(line).text or "" for line in lines]


class _Case(SynchronousTestCase):
    def setUp(self) -> None:
        self.data = temp_dir(self)
        self.chat = self.make_chat()

    def make_chat(self, **kwargs: Any) -> Chat:
        kwargs.setdefault("limits", Limits(flood_rate=0))
        chat = Chat(self.data, **kwargs)
        # A second of the clock's own, so that stamps look like today's.
        chat.clock.advance(1_790_000_000)
        return chat

    def restart(self) -> None:
        self.chat.stop()
        self.chat = self.make_chat()

    def login(self, name: str) -> Client:
        client = self.chat.connect()
        client.take()
        client.send(f"/login {name} password1")
        return client


class MessageTests(_Case):
    def test_both_parties_see_one_message_with_one_stamp(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("Bob")
        alice.send("/msg bob hi  there ")
        mine = alice.take()
        theirs = bob.take()
        self.assertEqual(len(mine), 1)
        stamp = stamp_of(mine[0])
        self.assertEqual(mine, [f"DM Bob {stamp} alice :hi  there "])
        self.assertEqual(theirs, [f"DM alice {stamp} alice :hi  there "])

    def test_every_connection_of_both_gets_its_copy(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("bob")
        alice2 = self.chat.user("alice", register=False)
        bob2 = self.chat.user("bob", register=False)
        bob2.send("/join general")
        bob2.take()
        bob.send("/msg ALICE yo")
        stamp = stamp_of(bob.take()[0])
        self.assertEqual(bob2.take(), [f"DM alice {stamp} bob :yo"])
        self.assertEqual(alice.take(), [f"DM bob {stamp} bob :yo"])
        self.assertEqual(alice2.take(), [f"DM bob {stamp} bob :yo"])

    def test_a_message_to_yourself_comes_once_to_each_connection(self) -> None:
        alice = self.chat.user("alice")
        other = self.chat.user("alice", register=False)
        alice.send("/msg alice note")
        lines = alice.take()
        stamp = stamp_of(lines[0])
        self.assertEqual(lines, [f"DM alice {stamp} alice :note"])
        self.assertEqual(other.take(), [f"DM alice {stamp} alice :note"])

    def test_text_is_cleaned_like_room_messages(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("bob")
        alice.send("/msg bob a\x07b\x1b[31mc")
        alice.take()
        self.assertEqual(texts(bob.take()), ["abc"])

    def test_errors(self) -> None:
        alice = self.chat.user("alice")
        for line, code in [
            ("/msg nobody hi", "no-such-user"),
            ("/msg bob", "bad-syntax"),
            ("/msg bob ", "bad-syntax"),
            ("/msg bob    ", "bad-syntax"),
            ("/msg b!b hi", "bad-name"),
            ("/msg", "bad-syntax"),
        ]:
            if line == "/msg nobody hi":
                self.chat.user("bob")
            alice.send(line)
            lines = alice.take()
            self.assertEqual([parse_line(x).args[0] for x in lines], [code], line)
            self.assertTrue(lines[0].startswith("ERR "), lines)

    def test_not_before_login(self) -> None:
        client = self.chat.connect()
        client.take()
        client.send("/msg bob hi", "/dms", "/history general", "/ignore bob", "/ignores")
        self.assertEqual(
            client.take(), ["ERR bad-state :log in first: login, register, or /help"] * 5
        )

    def test_works_in_a_room_without_disturbing_it(self) -> None:
        alice = self.chat.in_room("alice")
        bob = self.chat.in_room("bob")
        carol = self.chat.in_room("carol")
        for client in (alice, bob):
            client.take()
        alice.send("said first", "/msg bob psst")
        lines = bob.take()
        self.assertEqual([line.split()[0] for line in lines], ["MSG", "DM"])
        self.assertEqual(texts(carol.take()), ["said first"])

    def test_a_turns_messages_cost_one_write_per_file_and_per_connection(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("bob")
        carol = self.chat.user("carol")
        writes: list[int] = []
        delivered: list[bytes] = []
        real_write = os.write
        real_deliver = bob.protocol.deliver

        def counted_write(fd: int, data: Any) -> int:
            writes.append(fd)
            return real_write(fd, data)

        def counted_deliver(data: bytes) -> None:
            delivered.append(data)
            real_deliver(data)

        bob.protocol.deliver = counted_deliver  # type: ignore[method-assign]
        with mock.patch("os.write", counted_write):
            alice.send("/msg bob one", "/msg bob two")
            carol.send("/msg bob three")
            self.chat.clock.advance(0)
        # Two copies of two conversations; bob's three lines in one write.
        self.assertEqual(len(writes), 4)
        self.assertEqual(len(delivered), 1)
        self.assertEqual(texts(bob.take()), ["one", "two", "three"])

    def test_every_sender_of_a_batch_that_cannot_be_stored_is_told(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("bob")
        carol = self.chat.user("carol")

        def full(fd: int, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        with mock.patch("os.write", full):
            alice.send("/msg carol one")
            bob.send("/msg carol two")
            self.chat.clock.advance(0)
        refused = "ERR unavailable :cannot store messages right now; not sent"
        self.assertEqual(alice.take(), [refused])
        self.assertEqual(bob.take(), [refused])
        self.assertEqual(carol.take(), [])

    def test_messages_in_one_conversation_have_distinct_stamps(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("bob")
        for _ in range(3):
            alice.send("/msg bob one")
            bob.send("/msg alice two")
        stamps = [stamp_of(line) for line in alice.take()]
        self.assertEqual(len(stamps), 6)
        self.assertEqual(sorted(set(stamps)), stamps)
        self.assertEqual(stamps[0], format_timestamp(self.chat.clock.seconds()))


class UnreadTests(_Case):
    def test_messages_sent_while_away_come_after_the_room_list(self) -> None:
        self.chat.user("bob").send("/quit")
        alice = self.chat.user("alice")
        alice.send("/msg bob are you there?", "/msg bob hello?")
        sent = alice.take()
        bob = self.login("bob")
        self.assertEqual(
            bob.take(),
            [
                "OK login bob",
                "ROOM general 0",
                "END rooms",
                f"DM alice {stamp_of(sent[0])} alice :are you there?",
                f"DM alice {stamp_of(sent[1])} alice :hello?",
                "END unread",
            ],
        )
        # Delivered now: not again.
        bob.send("/quit")
        again = self.login("bob")
        self.assertEqual(again.take(), ["OK login bob", "ROOM general 0", "END rooms"])

    def test_nothing_missed_means_no_end_unread(self) -> None:
        bob = self.chat.user("bob")
        bob.send("/quit")
        self.assertEqual(self.login("bob").take(), ["OK login bob", "ROOM general 0", "END rooms"])

    def test_a_message_shown_on_a_connection_is_not_unread(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("bob")
        alice.send("/msg bob hi")
        self.assertEqual(len(bob.take()), 1)
        bob.send("/quit")
        self.assertEqual(self.login("bob").take(), ["OK login bob", "ROOM general 0", "END rooms"])

    def test_unread_survive_a_restart(self) -> None:
        self.chat.user("bob").send("/quit")
        alice = self.chat.user("alice")
        alice.send("/msg bob before the restart")
        stamp = stamp_of(alice.take()[0])
        self.restart()
        self.assertEqual(
            self.login("bob").take()[3:],
            [f"DM alice {stamp} alice :before the restart", "END unread"],
        )

    def test_at_most_200_then_a_pointer_to_the_rest(self) -> None:
        self.chat.user("bob").send("/quit")
        alice = self.chat.user("alice")
        for n in range(205):
            alice.send(f"/msg bob {n}")
        alice.take()
        lines = self.login("bob").take()[3:]
        self.assertEqual(lines[0], "INFO :5 older unread messages: /history @alice")
        self.assertEqual(texts(lines[1:-1]), [str(n) for n in range(5, 205)])
        self.assertEqual(lines[-1], "END unread")

    def test_a_message_that_arrives_while_unread_are_read_comes_after_them(self) -> None:
        self.chat.user("bob").send("/quit")
        alice = self.chat.user("alice")
        alice.send("/msg bob first")
        direct = self.chat.service.direct
        real = direct.take_unread
        held: list[tuple[Deferred[Any], Any]] = []

        def take_later(user: str) -> Deferred[Any]:
            later: Deferred[Any] = Deferred()
            held.append((later, real(user)))
            return later

        direct.take_unread = take_later  # type: ignore[method-assign]
        bob = self.login("bob")
        # bob counts as online already: what is sent now is not unread.
        alice.send("/msg bob second")
        self.assertEqual(bob.take(), [])
        later, unread = held.pop()
        unread.chainDeferred(later)
        self.assertEqual(
            [line.split(" :")[-1] if line.startswith("DM") else line for line in bob.take()],
            ["OK login bob", "ROOM general 0", "END rooms", "first", "END unread", "second"],
        )

    def test_registration_has_no_unread(self) -> None:
        client = self.chat.connect()
        client.take()
        client.send("/register newbie password1")
        self.assertEqual(client.take(), ["OK register newbie", "ROOM general 0", "END rooms"])


class ConversationTests(_Case):
    def test_dms_lists_partners_latest_first(self) -> None:
        alice = self.chat.user("alice")
        self.chat.user("Bob")
        self.chat.user("carol")
        alice.send("/msg bob one")
        self.chat.clock.advance(1)
        alice.send("/msg carol two")
        self.chat.clock.advance(1)
        alice.send("/msg BOB three")
        stamps = [stamp_of(line) for line in alice.take()]
        alice.send("/dms")
        self.assertEqual(
            alice.take(),
            [f"CONVERSATION Bob {stamps[2]}", f"CONVERSATION carol {stamps[1]}", "END dms"],
        )

    def test_no_conversations(self) -> None:
        alice = self.chat.user("alice")
        alice.send("/dms")
        self.assertEqual(alice.take(), ["END dms"])

    def test_history_of_a_conversation_pages_back(self) -> None:
        alice = self.chat.user("alice")
        bob = self.chat.user("Bob")
        for n in range(60):
            (alice if n % 2 else bob).send(f"/msg {'bob' if n % 2 else 'alice'} {n}")
            self.chat.clock.advance(0.01)
        bob.take()
        alice.take()
        alice.send("/history @BOB")
        page = alice.take()
        self.assertEqual(page[-1], "END history @Bob")
        self.assertEqual(texts(page[:-1]), [str(n) for n in range(10, 60)])
        self.assertEqual(parse_line(page[0]).args[0], "@Bob")
        self.assertEqual(parse_line(page[0]).args[2], "Bob")
        self.assertEqual(parse_line(page[1]).args[2], "alice")
        oldest = stamp_of(page[0])
        alice.send(f"/history @bob {oldest} 4")
        older = alice.take()
        self.assertEqual(texts(older[:-1]), ["6", "7", "8", "9"])
        alice.send(f"/history @bob 100 {stamp_of(older[0])}")
        self.assertEqual(texts(alice.take()[:-1]), [str(n) for n in range(6)])

    def test_what_was_just_sent_is_in_the_page_and_the_list(self) -> None:
        alice = self.chat.user("alice")
        self.chat.user("bob")
        alice.send("/msg bob just now", "/history @bob", "/dms")
        lines = alice.take()
        self.assertEqual(texts(lines[:3]), ["just now", "just now", ""])
        self.assertEqual(lines[2], "END history @bob")
        self.assertEqual(lines[3], f"CONVERSATION bob {stamp_of(lines[0])}")

    def test_history_survives_a_restart(self) -> None:
        alice = self.chat.user("alice")
        self.chat.user("bob")
        alice.send("/msg bob kept")
        self.restart()
        bob = self.login("bob")
        bob.take()
        bob.send("/history @alice")
        lines = bob.take()
        self.assertEqual(texts(lines), ["kept", ""])
        self.assertEqual(lines[-1], "END history @alice")

    def test_history_errors(self) -> None:
        alice = self.chat.user("alice")
        for line, code in [
            ("/history nowhere", "no-such-room"),
            ("/history @nobody", "no-such-user"),
            ("/history general 0", "bad-syntax"),
            ("/history general 201", "bad-syntax"),
            ("/history general yesterday", "bad-syntax"),
            ("/history general 2026-13-01T00:00:00.000Z", "bad-syntax"),
            ("/history general 5 6", "bad-syntax"),
            ("/history", "bad-syntax"),
            ("/history a b c d", "bad-syntax"),
            ("/history b!d", "bad-name"),
            ("/history b!d zzz", "bad-syntax"),
        ]:
            alice.send(line)
            self.assertEqual([parse_line(x).args[0] for x in alice.take()], [code], line)


class RoomHistoryTests(_Case):
    def test_a_room_pages_back_whether_or_not_you_are_in_it(self) -> None:
        alice = self.chat.in_room("alice")
        for n in range(70):
            alice.send(str(n))
            self.chat.clock.advance(0.001)
        alice.take()
        bob = self.chat.user("bob")
        bob.send("/history GENERAL")
        page = bob.take()
        self.assertEqual(page[-1], "END history general")
        self.assertEqual(texts(page[:-1]), [str(n) for n in range(20, 70)])
        self.assertTrue(all(line.startswith("HISTORY general ") for line in page[:-1]))
        bob.send(f"/history general {stamp_of(page[0])} 200")
        self.assertEqual(texts(bob.take()[:-1]), [str(n) for n in range(20)])
        bob.send(f"/history general 3 {stamp_of(page[0])}")
        self.assertEqual(texts(bob.take()[:-1]), ["17", "18", "19"])

    def test_what_was_just_said_is_in_the_page(self) -> None:
        alice = self.chat.in_room("alice")
        alice.send("just now", "/history general 1")
        lines = alice.take()
        self.assertEqual(lines[1].split(" ", 1)[0], "HISTORY")
        self.assertEqual(texts(lines[1:]), ["just now", ""])

    def test_messages_said_in_one_millisecond_get_distinct_stamps(self) -> None:
        alice = self.chat.in_room("alice")
        alice.send("a", "b", "c")
        stamps = [stamp_of(line) for line in alice.take()]
        self.assertEqual(len(set(stamps)), 3)
        self.assertEqual(sorted(stamps), stamps)


class IgnoreTests(_Case):
    def test_an_ignored_user_is_not_heard_and_not_told(self) -> None:
        alice = self.chat.user("Alice")
        bob = self.chat.user("bob")
        bob.send("/ignore alice")
        self.assertEqual(bob.take(), ["OK ignore Alice"])
        alice.send("/msg bob buy now")
        mine = alice.take()
        self.assertEqual(mine, [f"DM bob {stamp_of(mine[0])} Alice :buy now"])
        self.assertEqual(bob.take(), [])
        bob.send("/history @alice", "/dms")
        self.assertEqual(bob.take(), ["END history @Alice", "END dms"])
        # The sender's own history shows it, as if it had been heard.
        alice.send("/history @bob")
        self.assertEqual(texts(alice.take()), ["buy now", ""])

    def test_nor_while_away(self) -> None:
        bob = self.chat.user("bob")
        alice = self.chat.user("alice")
        bob.send("/ignore alice", "/quit")
        alice.send("/msg bob hi")
        self.assertEqual(self.login("bob").take(), ["OK login bob", "ROOM general 0", "END rooms"])

    def test_unignore_and_the_list(self) -> None:
        bob = self.chat.user("bob")
        for name in ("zed", "Alice", "carol"):
            self.chat.user(name)
        bob.send("/ignore zed", "/ignore alice", "/ignore CAROL", "/ignores")
        self.assertEqual(
            bob.take(),
            [
                "OK ignore zed",
                "OK ignore Alice",
                "OK ignore carol",
                "IGNORED Alice",
                "IGNORED carol",
                "IGNORED zed",
                "END ignores",
            ],
        )
        bob.send("/unignore carol", "/ignores")
        self.assertEqual(
            bob.take(), ["OK unignore carol", "IGNORED Alice", "IGNORED zed", "END ignores"]
        )
        alice = self.login("alice")
        alice.take()
        alice.send("/msg bob back")
        self.assertEqual(len(bob.take()), 0)
        carol = self.login("carol")
        carol.take()
        carol.send("/msg bob heard")
        self.assertEqual(texts(bob.take()), ["heard"])

    def test_ignores_survive_a_restart(self) -> None:
        bob = self.chat.user("bob")
        self.chat.user("alice")
        bob.send("/ignore alice")
        self.restart()
        bob = self.login("bob")
        bob.take()
        bob.send("/ignores")
        self.assertEqual(bob.take(), ["IGNORED alice", "END ignores"])

    def test_errors(self) -> None:
        bob = self.chat.user("bob")
        bob.send("/ignore nobody", "/unignore nobody", "/ignore", "/ignore b!d", "/ignores x")
        self.assertEqual(
            [parse_line(x).args[0] for x in bob.take()],
            ["no-such-user", "no-such-user", "bad-syntax", "bad-name", "bad-syntax"],
        )
