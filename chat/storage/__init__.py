"""
Storage by feature: each feature that keeps something has one small
interface and two implementations, one on files and one on Redis.

    chat/storage/<feature>.py          the interface(s): what the server asks
    chat/storage/files/<feature>.py    the embedded store, under --data
    chat/storage/redis/<feature>.py    the shared store, --store redis://
    chat/storage/redis/lua/<feature>*.lua   its Redis scripts, if any
    tests/storage/test_<feature>.py    one contract suite, run on both

Features today: L{rooms} (rooms, their history and who is in them) and
L{accounts}.  The Redis implementations share one connection
(L{chat.storage.redis.connection.RedisConnection}): a feature registers
its scripts and the kinds of event it writes to C{chatroom:events} there,
and is called back with those events in the stream's order.

Implementations are grouped by backend rather than by feature because
each backend's features share machinery the other backend lacks: the
files share the data directory and its thread runner, the Redis ones a
connection, the event stream and a library of Lua.
"""

from __future__ import annotations

from chat.storage.common import NameTaken, Runner, StoreUnavailable

__all__ = ["NameTaken", "Runner", "StoreUnavailable"]
