"""
The moderation and admin commands of a line connection: each asks the
avatar (L{chat.moderation.Moderator}) and answers in lines.

Acts that a room or everyone hears are answered by that line itself (the
actor is in the room); the others by C{OK} or a listing.  Like
L{chat.wire.login.LoginFlow}, this is a part of
L{chat.wire.protocol.ChatProtocol} and holds no state of its own.
"""

# test-case-name: tests.test_moderation

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from twisted.internet.defer import Deferred

from chat.avatar import ChatUser
from chat.lines import format_line
from chat.storage.moderation import Act
from chat.wire.encoder import LineEncoder

__all__ = ["ModerationCommands"]

T = TypeVar("T")


def _shown(act: Act) -> bytes:
    """
    Nothing more than the act's own line, which the room hears.
    """
    return b""


class ModerationCommands:
    if TYPE_CHECKING:
        encoder: ClassVar[LineEncoder]

        def _avatar(self) -> ChatUser: ...
        def write(self, data: bytes) -> None: ...
        def _later(self, d: Deferred[T], answer: Callable[[T], bytes]) -> None: ...

    # In a room

    def do_topic(self, text: str) -> None:
        self._later(self._avatar().set_topic(text), _shown)

    def do_op(self, name: str) -> None:
        self._later(self._avatar().op(name), _shown)

    def do_deop(self, name: str) -> None:
        self._later(self._avatar().deop(name), _shown)

    def do_ops(self) -> None:
        self.write(self.encoder.operators(*self._avatar().operators()))

    def do_kick(self, name: str, reason: str) -> None:
        self._later(self._avatar().kick(name, reason), _shown)

    def do_ban(self, name: str, reason: str) -> None:
        self._later(self._avatar().ban(name, reason), _shown)

    def do_unban(self, name: str) -> None:
        self._later(self._avatar().unban(name), _shown)

    def do_bans(self) -> None:
        self.write(self.encoder.bans(*self._avatar().bans()))

    def do_mute(self, name: str) -> None:
        self._later(self._avatar().mute(name), _shown)

    def do_unmute(self, name: str) -> None:
        self._later(self._avatar().unmute(name), _shown)

    def do_delete(self, stamp: str) -> None:
        self._later(self._avatar().delete(stamp), _shown)

    # Admins

    def do_lock(self, name: str, reason: str) -> None:
        done = self._avatar().lock(name, reason)
        self._later(done, lambda act: format_line("OK", "lock", act.target or name))

    def do_unlock(self, name: str) -> None:
        done = self._avatar().unlock(name)
        self._later(done, lambda act: format_line("OK", "unlock", act.target or name))

    def do_wall(self, text: str) -> None:
        self._later(self._avatar().wall(text), _shown)

    def do_drop(self, name: str, reason: str) -> None:
        user = self._avatar()
        # An admin outside the room is answered with the line its members
        # hear; one inside hears it with them.
        inside = user.room is not None and user.room.name.lower() == name.lower()
        encoder = self.encoder
        self._later(user.drop(name, reason), _shown if inside else encoder.act)

    def do_audit(self, count: str) -> None:
        self._later(self._avatar().audit(int(count)), self.encoder.audit)
