"""
The domain without a front door: avatars act, rooms tell their members'
encoders of each event once per kind of front door.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chat.avatar import ChatUser
from chat.errors import ChatError, ErrorCode
from chat.interfaces import IChatClient, IChatUser, IEventEncoder
from chat.message import Message
from chat.service import ChatService
from chat.storage.files.rooms import FileChatStore, LocalBackend
from chat.wire.encoder import LINES
from chat.wire.protocol import ChatProtocol
from tests.helpers import Chat, run_inline, temp_dir


class CountingEncoder:
    """
    An encoder that says which events it was asked to encode.
    """

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.calls: list[tuple[str, ...]] = []

    def messages(self, room: str, messages: Sequence[Message]) -> bytes:
        self.calls.append(("messages", room, *(text for _, _, text in messages)))
        return self.tag + b"".join(text.encode() for _, _, text in messages)

    def joined(self, room: str, timestamp: str, user: str) -> bytes:
        self.calls.append(("joined", room, user))
        return self.tag + b"+" + user.encode()

    def parted(self, room: str, timestamp: str, user: str) -> bytes:
        self.calls.append(("parted", room, user))
        return self.tag + b"-" + user.encode()


@implementer(IChatClient)
class Mind:
    """
    A connection reduced to what the domain needs of it.
    """

    def __init__(self, encoder: CountingEncoder) -> None:
        self.encoder = encoder
        self.closing = False
        self.got: list[bytes] = []
        self.errors: list[tuple[ErrorCode, str]] = []

    def deliver(self, data: bytes) -> None:
        self.got.append(data)

    def error(self, code: ErrorCode, text: str) -> None:
        self.errors.append((code, text))

    def shutdown(self, reason: str, reconnect: int = 0) -> Deferred[None]:
        self.closing = True
        return succeed(None)


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        store = FileChatStore(temp_dir(self), run=run_inline)
        self.service = ChatService(LocalBackend(store, self.clock), self.clock)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def user(self, name: str, encoder: CountingEncoder) -> tuple[ChatUser, Mind]:
        mind = Mind(encoder)
        return ChatUser(name, self.service, mind), mind

    def test_interfaces(self) -> None:
        user, mind = self.user("alice", CountingEncoder(b"a"))
        verifyObject(IChatUser, user)
        verifyObject(IChatClient, mind)
        verifyObject(IEventEncoder, LINES)

    def test_a_batch_is_encoded_once_per_kind_of_front_door(self) -> None:
        lines, frames = CountingEncoder(b"L:"), CountingEncoder(b"F:")
        minds = []
        for i, encoder in enumerate([lines, frames, lines, frames, lines]):
            user, mind = self.user(f"u{i}", encoder)
            user.join("general")
            minds.append(mind)
        lines.calls.clear()
        frames.calls.clear()
        speaker = self.service.find("general")
        assert speaker is not None
        first = next(iter(speaker.members))
        first.say("one")
        first.say("two")
        self.clock.advance(0)
        self.assertEqual(lines.calls, [("messages", "general", "one", "two")])
        self.assertEqual(frames.calls, [("messages", "general", "one", "two")])
        self.assertEqual(
            [mind.got[-1] for mind in minds],
            [b"L:onetwo", b"F:onetwo", b"L:onetwo", b"F:onetwo", b"L:onetwo"],
        )

    def test_join_and_part_skip_the_user(self) -> None:
        encoder = CountingEncoder(b"")
        alice, alice_mind = self.user("alice", encoder)
        bob, bob_mind = self.user("bob", encoder)
        alice.join("general")
        bob.join("general")
        self.assertEqual(alice_mind.got, [b"+bob"])
        self.assertEqual(bob_mind.got, [])
        self.assertEqual(bob.who(), ["alice", "bob"])
        room = bob.leave()
        self.assertEqual(room.name, "general")
        self.assertEqual(alice_mind.got, [b"+bob", b"-bob"])
        self.assertIsNone(bob.room)

    def test_messages_are_values(self) -> None:
        alice, _ = self.user("alice", CountingEncoder(b""))
        room = alice.join("general")
        alice.say("hello")
        (message,) = room.pending
        self.assertIsInstance(message, Message)
        self.assertEqual((message.sender, message.text), ("alice", "hello"))
        # Still the (timestamp, user, text) tuple the storage speaks.
        self.assertEqual(message, (message.timestamp, "alice", "hello"))

    def test_nothing_visible_is_not_said(self) -> None:
        alice, _ = self.user("alice", CountingEncoder(b""))
        room = alice.join("general")
        alice.say("\u200b ")
        self.assertEqual(room.pending, [])

    def test_actions_refuse_with_what_to_tell(self) -> None:
        alice, _ = self.user("alice", CountingEncoder(b""))
        with self.assertRaises(ChatError) as caught:
            alice.join("nowhere")
        self.assertIs(caught.exception.code, ErrorCode.NO_SUCH_ROOM)
        with self.assertRaises(ChatError) as caught:
            alice.create("GENERAL")
        self.assertIs(caught.exception.code, ErrorCode.ROOM_EXISTS)
        for action in (alice.leave, alice.who):
            with self.assertRaises(ChatError) as caught:
                action()
            self.assertIs(caught.exception.code, ErrorCode.BAD_STATE)

    def test_create_enters_the_room(self) -> None:
        alice, _ = self.user("alice", CountingEncoder(b""))
        room = self.successResultOf(alice.create("Attic"))
        self.assertIs(alice.room, room)
        self.assertEqual(self.service.room_list(), [("Attic", 1), ("general", 0)])

    def test_a_closing_connection_creates_but_does_not_enter(self) -> None:
        alice, mind = self.user("alice", CountingEncoder(b""))
        mind.closing = True
        room = self.successResultOf(alice.create("Attic"))
        self.assertIsNone(alice.room)
        self.assertEqual(room.members, {})


class DerivedStateTests(SynchronousTestCase):
    """
    The line front door keeps no state of its own: a room taken from the
    avatar outside the protocol (a kick, say) puts it in the lobby.
    """

    def test_in_a_room_is_having_a_room(self) -> None:
        chat = Chat(temp_dir(self))
        self.addCleanup(chat.stop)
        client = chat.in_room("alice")
        protocol: Any = client.protocol
        assert isinstance(protocol, ChatProtocol)
        verifyObject(IChatClient, protocol)
        self.assertEqual(protocol.state.value, "in-room")
        chat.service.leave(protocol.user)
        self.assertEqual(protocol.state.value, "lobby")
        client.send("/who")
        self.assertEqual(client.take(), ["ERR bad-state :/who works only in a room"])
