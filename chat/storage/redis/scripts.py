"""
The Lua that Redis runs for chatroom, kept in C{.lua} files next to this
module (C{lua/}) and read with L{importlib.resources}, so that they ship
in the wheel and an editor highlights them as Lua.

Two placeholders are filled in when a script is read: C{{prefix}} (the
key prefix, C{chatroom:}) and C{{events_cap}} (how many events the shared
stream keeps).  Nothing else in the files is touched.
"""

# test-case-name: tests.storage.test_redis

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = ["Script", "read_lua"]


def read_lua(name: str) -> str:
    """
    The text of one of the package's Lua files, as shipped.
    """
    return (resources.files(__package__) / "lua" / name).read_text(encoding="utf-8")


class Script:
    """
    A Lua script, loaded on every new connection and called by its SHA.

    @ivar text: The script as sent to Redis.
    @ivar sha: Its SHA-1, by which C{EVALSHA} calls it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    @classmethod
    def load(cls, *names: str, prefix: str, events_cap: int) -> Script:
        """
        A script made of Lua files, in order (a library first, say), with
        the placeholders filled in.
        """
        text = "\n".join(read_lua(name) for name in names)
        return cls(text.replace("{prefix}", prefix).replace("{events_cap}", str(events_cap)))
