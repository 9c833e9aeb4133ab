"""
The shared store: many chatroom processes on one Redis, so that users on
different processes chat as on one server.  L{connection} is what the
features share; L{rooms}, L{presence}, L{direct}, L{moderation} and
L{accounts} are the features.
"""

from __future__ import annotations

from chat.storage.redis.accounts import RedisAccounts
from chat.storage.redis.connection import RedisConnection
from chat.storage.redis.rooms import RedisBackend

__all__ = ["RedisAccounts", "RedisBackend", "RedisConnection"]
