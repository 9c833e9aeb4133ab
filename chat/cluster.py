"""
The Redis backend, under its older name: it lives in
L{chat.storage.redis} now.
"""

from __future__ import annotations

from chat.storage.redis.accounts import RedisAccounts
from chat.storage.redis.rooms import RedisBackend

__all__ = ["RedisAccounts", "RedisBackend"]
