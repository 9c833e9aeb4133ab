"""
Moderation and administration: every command, every line and every role
boundary of the protocol contract, against an in-memory server on the
file store (the stores themselves: L{tests.storage.test_moderation}).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chat.guard import Limits
from chat.lines import parse_line
from tests.helpers import Chat, Client, temp_dir

ADMIN = "root"


def stamp_of(line: str) -> str:
    return parse_line(line).args[1]


def tags(lines: list[str]) -> list[str]:
    return [parse_line(line).tag for line in lines]


class _Case(SynchronousTestCase):
    def setUp(self) -> None:
        self.data = temp_dir(self)
        self.chat = self.make_chat()
        # alice owns Lounge; bob and mallory are in it.
        self.alice = self.chat.user("alice")
        self.alice.send("/create Lounge")
        self.alice.take()
        self.bob = self.enter("bob")
        self.mallory = self.enter("mallory")
        self.take_all()

    def make_chat(self, **kwargs: Any) -> Chat:
        kwargs.setdefault("limits", Limits(flood_rate=0))
        kwargs.setdefault("admins", (ADMIN,))
        chat = Chat(self.data, **kwargs)
        chat.clock.advance(1_790_000_000)
        return chat

    def enter(self, name: str, room: str = "Lounge", register: bool = True) -> Client:
        client = self.chat.user(name, register=register)
        client.send(f"/join {room}")
        client.take()
        return client

    def login(self, name: str) -> Client:
        return self.chat.user(name, register=False)

    def take_all(self) -> None:
        for client in (self.alice, self.bob, self.mallory):
            client.take()

    def restart(self) -> None:
        self.chat.stop()
        self.chat = self.make_chat()

    def admin(self, room: str | None = None) -> Client:
        try:
            root = self.chat.user(ADMIN)
        except AssertionError:
            root = self.login(ADMIN)
        if room is not None:
            root.send(f"/join {room}")
            root.take()
        self.take_all()
        return root

    def op_bob(self) -> None:
        self.alice.send("/op bob")
        self.take_all()

    def audit(self) -> list[list[str]]:
        with open(self.data / "audit.log") as f:
            entries = [json.loads(line) for line in f]
        return [
            [e["actor"], e["action"], e["room"] or "-", e["target"] or "-", e["reason"] or ""]
            for e in entries
        ]


class OwnerAndOperatorTests(_Case):
    def test_the_creator_owns_the_room(self) -> None:
        self.mallory.send("/ops")
        self.assertEqual(self.mallory.take(), ["OPERATOR Lounge alice owner", "END ops Lounge"])

    def test_general_has_no_owner(self) -> None:
        self.alice.send("/join general")
        self.alice.take()
        self.alice.send("/ops")
        self.assertEqual(self.alice.take(), ["END ops general"])
        self.alice.send("/op bob")
        self.assertEqual(tags(self.alice.take()), ["ERR"])

    def test_the_owner_makes_an_operator_and_the_room_hears_it(self) -> None:
        self.alice.send("/op BOB")
        [line] = self.alice.take()
        stamp = stamp_of(line)
        self.assertEqual(line, f"OP Lounge {stamp} alice bob")
        self.assertEqual(self.bob.take(), [line])
        self.assertEqual(self.mallory.take(), [line])
        self.mallory.send("/ops")
        self.assertEqual(
            self.mallory.take(),
            ["OPERATOR Lounge alice owner", "OPERATOR Lounge bob operator", "END ops Lounge"],
        )

    def test_an_operator_cannot_make_operators(self) -> None:
        self.op_bob()
        self.bob.send("/op mallory")
        [line] = self.bob.take()
        self.assertTrue(line.startswith("ERR forbidden :"), line)
        self.assertEqual(self.mallory.take(), [])

    def test_op_of_someone_not_in_the_room(self) -> None:
        self.chat.user("carol")
        self.alice.send("/op carol")
        self.assertEqual(self.alice.take(), ["ERR not-here :carol is not in Lounge"])

    def test_op_of_no_account(self) -> None:
        self.alice.send("/op ghost")
        self.assertEqual(self.alice.take(), ["ERR no-such-user :no user named ghost"])

    def test_a_deopped_operator_loses_its_rights_at_once(self) -> None:
        self.op_bob()
        self.bob.send("/mute mallory")
        self.assertEqual(tags(self.bob.take()), ["MUTE"])
        self.take_all()
        self.alice.send("/deop bob")
        [line] = self.alice.take()
        self.assertEqual(line, f"DEOP Lounge {stamp_of(line)} alice bob")
        self.assertEqual(self.bob.take(), [line])
        self.bob.send("/unmute mallory")
        self.assertEqual(tags(self.bob.take()), ["ERR"])
        self.bob.send("/kick mallory")
        self.assertTrue(self.bob.take()[0].startswith("ERR forbidden"))

    def test_nobody_deops_the_owner(self) -> None:
        root = self.admin("Lounge")
        root.send("/deop alice")
        self.assertTrue(root.take()[0].startswith("ERR forbidden"))
        self.alice.send("/deop alice")
        self.assertTrue(self.alice.take()[0].startswith("ERR forbidden"))

    def test_commands_in_a_room_are_refused_in_the_lobby(self) -> None:
        self.bob.send("/leave")
        self.bob.take()
        self.bob.send("/ops")
        self.assertEqual(self.bob.take(), ["ERR bad-state :/ops works only in a room"])


class TopicTests(_Case):
    def test_an_operator_sets_the_topic_and_joins_show_it(self) -> None:
        self.alice.send("/topic  Welcome to the  Lounge ")
        [line] = self.alice.take()
        stamp = stamp_of(line)
        self.assertEqual(line, f"TOPIC Lounge {stamp} alice :Welcome to the  Lounge")
        self.assertEqual(self.mallory.take(), [line])
        carol = self.chat.user("carol")
        carol.send("/join lounge")
        lines = carol.take()
        self.assertEqual(lines[-2:], ["END history Lounge", line])

    def test_an_empty_topic_clears_it(self) -> None:
        self.alice.send("/topic hello")
        self.alice.take()
        self.alice.send("/topic")
        [line] = self.alice.take()
        self.assertEqual(line, f"TOPIC Lounge {stamp_of(line)} alice :")
        carol = self.chat.user("carol")
        carol.send("/join Lounge")
        self.assertEqual(carol.take()[-1], "END history Lounge")

    def test_only_operators_set_it(self) -> None:
        self.mallory.send("/topic spam")
        self.assertEqual(
            self.mallory.take(), ["ERR forbidden :only operators of Lounge may do that"]
        )
        self.assertEqual(self.alice.take(), [])

    def test_the_topic_survives_a_restart(self) -> None:
        self.alice.send("/topic kept")
        [line] = self.alice.take()
        self.restart()
        carol = self.chat.user("carol")
        carol.send("/join Lounge")
        self.assertEqual(carol.take()[-1], line)


class KickTests(_Case):
    def test_the_room_and_the_kicked_user_hear_it_and_it_is_in_the_lobby(self) -> None:
        self.op_bob()
        second = self.enter("mallory", register=False)
        self.take_all()
        self.bob.send("/kick mallory spam, again")
        [line] = self.bob.take()
        self.assertEqual(line, f"KICK Lounge {stamp_of(line)} bob mallory :spam, again")
        self.assertEqual(self.alice.take(), [line])
        self.assertEqual(self.mallory.take(), [line])
        self.assertEqual(second.take(), [line])
        for client in (self.mallory, second):
            client.send("/who")
            self.assertEqual(tags(client.take()), ["ERR"])
        # No PART follows, now or later.
        self.alice.send("/who")
        self.assertEqual(
            self.alice.take(), ["MEMBER Lounge alice", "MEMBER Lounge bob", "END members Lounge"]
        )
        self.assertEqual(self.bob.take(), [])

    def test_a_kick_without_a_reason(self) -> None:
        self.alice.send("/kick mallory")
        [line] = self.alice.take()
        self.assertEqual(line, f"KICK Lounge {stamp_of(line)} alice mallory")

    def test_a_kicked_user_may_come_back(self) -> None:
        self.alice.send("/kick mallory")
        self.take_all()
        self.mallory.send("/join Lounge")
        self.assertEqual(self.mallory.take()[0], "OK join Lounge")
        self.assertEqual(tags(self.alice.take()), ["JOIN"])

    def test_an_operator_cannot_kick_the_owner_or_an_admin(self) -> None:
        self.op_bob()
        root = self.admin("Lounge")
        self.bob.send("/kick alice")
        self.assertEqual(self.bob.take(), ["ERR forbidden :alice owns Lounge"])
        self.bob.send("/kick root")
        self.assertEqual(
            self.bob.take(), ["ERR forbidden :root is an admin; only admins act on admins"]
        )
        self.assertEqual(root.take(), [])

    def test_an_admin_kicks_the_owner(self) -> None:
        root = self.admin("Lounge")
        root.send("/kick alice")
        self.assertEqual(tags(root.take()), ["KICK"])
        self.alice.send("/who")
        self.assertEqual(tags(self.alice.take()), ["KICK", "ERR"])

    def test_a_non_operator_is_forbidden(self) -> None:
        self.mallory.send("/kick bob")
        self.assertEqual(
            self.mallory.take(), ["ERR forbidden :only operators of Lounge may do that"]
        )

    def test_kick_of_someone_not_in_the_room(self) -> None:
        self.chat.user("carol")
        self.alice.send("/kick carol")
        self.assertEqual(self.alice.take(), ["ERR not-here :carol is not in Lounge"])
        self.alice.send("/kick ghost")
        self.assertEqual(self.alice.take(), ["ERR no-such-user :no user named ghost"])


class BanTests(_Case):
    def test_a_banned_member_hears_it_and_cannot_come_back(self) -> None:
        self.alice.send("/ban mallory flooding")
        [line] = self.alice.take()
        stamp = stamp_of(line)
        self.assertEqual(line, f"BAN Lounge {stamp} alice mallory :flooding")
        self.assertEqual(self.mallory.take(), [line])
        self.assertEqual(self.bob.take(), [line])
        self.mallory.send("/join Lounge")
        self.assertEqual(self.mallory.take(), ["ERR banned :you are banned from Lounge"])
        self.alice.send("/bans")
        self.assertEqual(
            self.alice.take(),
            [f"BANNED Lounge mallory {stamp} alice :flooding", "END bans Lounge"],
        )

    def test_anyone_can_be_banned_and_unbanned(self) -> None:
        carol = self.chat.user("carol")
        self.alice.send("/ban carol")
        [line] = self.alice.take()
        self.assertEqual(line, f"BAN Lounge {stamp_of(line)} alice carol")
        carol.send("/join Lounge")
        self.assertEqual(tags(carol.take()), ["ERR"])
        self.alice.send("/unban carol")
        [line] = self.alice.take()
        self.assertEqual(line, f"UNBAN Lounge {stamp_of(line)} alice carol")
        carol.send("/join Lounge")
        self.assertEqual(carol.take()[0], "OK join Lounge")
        self.alice.take()
        self.alice.send("/bans")
        self.assertEqual(self.alice.take(), ["END bans Lounge"])

    def test_bans_are_for_operators(self) -> None:
        self.mallory.send("/bans")
        self.assertEqual(tags(self.mallory.take()), ["ERR"])
        self.mallory.send("/ban bob")
        self.assertEqual(tags(self.mallory.take()), ["ERR"])

    def test_bans_survive_a_restart(self) -> None:
        self.alice.send("/ban mallory")
        self.take_all()
        self.restart()
        mallory = self.login("mallory")
        mallory.send("/join Lounge")
        self.assertEqual(mallory.take(), ["ERR banned :you are banned from Lounge"])


class MuteTests(_Case):
    def test_a_muted_user_reaches_no_one(self) -> None:
        self.alice.send("/mute mallory")
        [line] = self.alice.take()
        self.assertEqual(line, f"MUTE Lounge {stamp_of(line)} alice mallory")
        self.assertEqual(self.mallory.take(), [line])
        self.bob.take()
        self.mallory.send("buy now")
        self.assertEqual(
            self.mallory.take(), ["ERR muted :you are muted in Lounge; nobody sees that"]
        )
        self.assertEqual(self.bob.take(), [])
        self.alice.send("/unmute mallory")
        [line] = self.alice.take()
        self.assertEqual(line, f"UNMUTE Lounge {stamp_of(line)} alice mallory")
        self.mallory.send("sorry")
        self.assertEqual(tags(self.bob.take()), ["UNMUTE", "MSG"])

    def test_a_mute_survives_a_restart(self) -> None:
        self.alice.send("/mute mallory")
        self.take_all()
        self.restart()
        mallory = self.enter("mallory", register=False)
        mallory.send("hello")
        self.assertEqual(tags(mallory.take()), ["ERR"])


class DeleteTests(_Case):
    def say(self, client: Client, text: str) -> str:
        client.send(text)
        lines = client.take()
        self.assertEqual(len(lines), 1, lines)
        self.take_all()
        return stamp_of(lines[0])

    def history(self, client: Client) -> list[str]:
        client.send("/history Lounge")
        return [parse_line(line).text or "" for line in client.take()[:-1]]

    def test_the_sender_deletes_its_message_everywhere(self) -> None:
        self.say(self.mallory, "first")
        stamp = self.say(self.mallory, "secret spam")
        self.say(self.mallory, "last")
        self.mallory.send(f"/delete {stamp}")
        [line] = self.mallory.take()
        self.assertEqual(line, f"DELETE Lounge {stamp} mallory")
        self.assertEqual(self.alice.take(), [line])
        self.assertEqual(self.history(self.alice), ["first", "last"])
        carol = self.chat.user("carol")
        carol.send("/join Lounge")
        joined = [parse_line(line).text for line in carol.take()]
        self.assertNotIn("secret spam", joined)
        self.assertIn("last", joined)
        self.assertNotIn(b"secret spam", (self.data / "rooms" / "Lounge.log").read_bytes())
        self.restart()
        self.assertEqual(self.history(self.login("bob")), ["first", "last"])

    def test_operators_delete_anyone_but_the_owner(self) -> None:
        self.op_bob()
        stamp = self.say(self.mallory, "spam")
        self.bob.send(f"/delete {stamp}")
        self.assertEqual(self.bob.take(), [f"DELETE Lounge {stamp} bob"])
        self.take_all()
        stamp = self.say(self.alice, "owner's words")
        self.bob.send(f"/delete {stamp}")
        self.assertEqual(self.bob.take(), ["ERR forbidden :alice owns Lounge"])

    def test_others_cannot_delete(self) -> None:
        stamp = self.say(self.bob, "mine")
        self.mallory.send(f"/delete {stamp}")
        self.assertEqual(tags(self.mallory.take()), ["ERR"])
        self.assertEqual(self.history(self.alice), ["mine"])

    def test_no_such_message(self) -> None:
        stamp = self.say(self.bob, "mine")
        self.bob.send(f"/delete {stamp}")
        self.bob.take()
        self.bob.send(f"/delete {stamp}")
        self.assertEqual(self.bob.take(), [f"ERR no-such-message :no message of Lounge at {stamp}"])
        self.bob.send("/delete 2020-01-01T00:00:00.000Z")
        self.assertEqual(tags(self.bob.take()), ["ERR"])

    def test_a_message_older_than_the_recent_history(self) -> None:
        self.chat.stop()
        self.chat = self.make_chat(history=2)
        bob = self.enter("bob", register=False)
        stamp = self.say(bob, "old")
        for n in range(3):
            self.say(bob, f"new {n}")
        bob.send(f"/delete {stamp}")
        self.assertEqual(bob.take(), [f"DELETE Lounge {stamp} bob"])
        self.assertEqual(self.history(bob), ["new 0", "new 1", "new 2"])


class LockTests(_Case):
    def test_a_locked_account_is_closed_and_cannot_log_in(self) -> None:
        root = self.admin()
        root.send("/lock mallory spam bot")
        self.assertEqual(root.take(), ["OK lock mallory"])
        self.assertEqual(self.mallory.take(), ["BYE :spam bot"])
        self.assertTrue(self.mallory.closed)
        self.assertEqual(tags(self.alice.take()), ["PART"])
        client = self.chat.connect()
        client.take()
        client.send("/login mallory password1")
        self.assertEqual(client.take(), ["ERR locked :this account is locked: spam bot"])
        client.send("/login mallory wrong-password")
        self.assertEqual(tags(client.take()), ["ERR"])
        self.assertIn("bad-credentials", client.transport.value().decode() or "bad-credentials")

    def test_unlock(self) -> None:
        root = self.admin()
        root.send("/lock MALLORY")
        self.assertEqual(root.take(), ["OK lock mallory"])
        self.assertEqual(self.mallory.take(), ["BYE :your account is locked"])
        root.send("/unlock mallory")
        self.assertEqual(root.take(), ["OK unlock mallory"])
        self.login("mallory")

    def test_a_lock_survives_a_restart(self) -> None:
        root = self.admin()
        root.send("/lock mallory")
        root.take()
        self.restart()
        client = self.chat.connect()
        client.take()
        client.send("/login mallory password1")
        self.assertEqual(client.take(), ["ERR locked :this account is locked"])

    def test_only_admins_lock(self) -> None:
        self.alice.send("/lock mallory")
        self.assertEqual(self.alice.take(), ["ERR forbidden :only admins may do that"])
        self.assertFalse(self.mallory.closed)

    def test_lock_of_no_account_or_of_yourself(self) -> None:
        root = self.admin()
        root.send("/lock ghost")
        self.assertEqual(root.take(), ["ERR no-such-user :no user named ghost"])
        root.send("/lock root")
        self.assertEqual(tags(root.take()), ["ERR"])


class WallTests(_Case):
    def test_everyone_logged_in_gets_the_notice(self) -> None:
        root = self.admin()
        lobby = self.chat.user("carol")
        outside = self.chat.connect()
        outside.take()
        root.send("/wall maintenance at  noon")
        [line] = root.take()
        stamp = parse_line(line).args[0]
        self.assertEqual(line, f"NOTICE {stamp} root :maintenance at  noon")
        for client in (self.alice, self.bob, self.mallory, lobby):
            self.assertEqual(client.take(), [line])
        self.assertEqual(outside.take(), [])

    def test_only_admins(self) -> None:
        self.alice.send("/wall hi")
        self.assertEqual(tags(self.alice.take()), ["ERR"])
        self.assertEqual(self.bob.take(), [])


class DropTests(_Case):
    def test_members_are_in_the_lobby_and_the_name_is_free(self) -> None:
        self.alice.send("hello")
        self.alice.send("/ban mallory")
        self.take_all()
        root = self.admin()
        root.send("/drop lounge closing down")
        [line] = root.take()
        stamp = stamp_of(line)
        self.assertEqual(line, f"DROPPED Lounge {stamp} root :closing down")
        for client in (self.alice, self.bob):
            self.assertEqual(client.take(), [line])
            client.send("/who")
            self.assertEqual(tags(client.take()), ["ERR"])
        self.assertEqual(self.mallory.take(), [])
        self.alice.send("/rooms")
        self.assertEqual(self.alice.take(), ["ROOM general 0", "END rooms"])
        self.alice.send("/join Lounge")
        self.assertEqual(tags(self.alice.take()), ["ERR"])
        self.assertFalse((self.data / "rooms" / "Lounge.log").exists())
        self.mallory.send("/create Lounge")
        self.assertEqual(
            self.mallory.take(), ["OK create Lounge", "OK join Lounge", "END history Lounge"]
        )
        self.mallory.send("/ops")
        self.assertEqual(self.mallory.take(), ["OPERATOR Lounge mallory owner", "END ops Lounge"])

    def test_an_admin_in_the_room_hears_it_once(self) -> None:
        root = self.admin("Lounge")
        root.send("/drop Lounge")
        [line] = root.take()
        self.assertEqual(line, f"DROPPED Lounge {stamp_of(line)} root")

    def test_only_admins_and_only_rooms(self) -> None:
        self.alice.send("/drop Lounge")
        self.assertEqual(tags(self.alice.take()), ["ERR"])
        root = self.admin()
        root.send("/drop Nowhere")
        self.assertEqual(
            root.take(), ["ERR no-such-room :no room named Nowhere; /rooms lists them"]
        )

    def test_a_drop_survives_a_restart(self) -> None:
        root = self.admin()
        root.send("/drop Lounge")
        root.take()
        self.restart()
        alice = self.login("alice")
        alice.send("/join Lounge")
        self.assertEqual(tags(alice.take()), ["ERR"])


class AuditTests(_Case):
    def test_every_act_is_recorded_with_who_when_where_and_why(self) -> None:
        root = self.admin()
        self.alice.send("/op bob")
        self.alice.send("/topic news")
        self.bob.send("hello")
        [hello] = [line for line in self.bob.take() if line.startswith("MSG")]
        self.bob.send(f"/delete {stamp_of(hello)}")
        self.bob.send("/mute mallory")
        self.bob.send("/unmute mallory")
        self.bob.send("/kick mallory out")
        self.bob.send("/ban mallory")
        self.bob.send("/unban mallory")
        self.alice.send("/deop bob")
        root.send("/wall hi all")
        root.send("/lock mallory")
        root.send("/unlock mallory")
        root.send("/drop Lounge bye")
        self.take_all()
        root.take()
        expected = [
            ["alice", "op", "Lounge", "bob", ""],
            ["alice", "topic", "Lounge", "-", "news"],
            ["bob", "delete", "Lounge", "bob", stamp_of(hello)],
            ["bob", "mute", "Lounge", "mallory", ""],
            ["bob", "unmute", "Lounge", "mallory", ""],
            ["bob", "kick", "Lounge", "mallory", "out"],
            ["bob", "ban", "Lounge", "mallory", ""],
            ["bob", "unban", "Lounge", "mallory", ""],
            ["alice", "deop", "Lounge", "bob", ""],
            ["root", "wall", "-", "-", "hi all"],
            ["root", "lock", "-", "mallory", ""],
            ["root", "unlock", "-", "mallory", ""],
            ["root", "drop", "Lounge", "-", "bye"],
        ]
        self.assertEqual(self.audit(), expected)
        root.send("/audit")
        lines = root.take()
        self.assertEqual(lines[-1], "END audit")
        seen = []
        for line in lines[:-1]:
            parsed = parse_line(line)
            self.assertEqual(parsed.tag, "AUDIT")
            _, actor, action, room, target = parsed.args
            seen.append([actor, action, room, target, parsed.text or ""])
        self.assertEqual(seen, expected)
        self.assertEqual(
            lines[2],
            f"AUDIT {parse_line(lines[2]).args[0]} bob delete Lounge bob :{stamp_of(hello)}",
        )
        root.send("/audit 2")
        self.assertEqual(
            [parse_line(line).args[2] for line in root.take()[:-1]], ["unlock", "drop"]
        )

    def test_only_admins_read_it(self) -> None:
        self.alice.send("/audit")
        self.assertEqual(self.alice.take(), ["ERR forbidden :only admins may do that"])
        root = self.admin()
        root.send("/audit 501")
        self.assertEqual(tags(root.take()), ["ERR"])


class AdminTests(_Case):
    def test_an_admin_named_before_registering(self) -> None:
        # root registers only now, and is an admin at once.
        root = self.admin("Lounge")
        root.send("/op mallory")
        self.assertEqual(tags(root.take()), ["OP"])

    def test_admins_are_not_keepers_but_act_everywhere(self) -> None:
        root = self.admin("general")
        root.send("/topic the general room")
        self.assertEqual(tags(root.take()), ["TOPIC"])
        root.send("/ops")
        self.assertEqual(root.take(), ["END ops general"])
