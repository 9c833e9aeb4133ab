"""
The contract suites' fixture: every test body runs once on files and once
on Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_twisted

from tests.redis_server import RedisProcess
from tests.storage.backends import FileStores, RedisStores, Stores


@pytest_twisted.async_yield_fixture(params=["files", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    running: Stores
    if request.param == "files":
        running = FileStores(tmp_path / "data")
    else:
        running = RedisStores(request.getfixturevalue("redis_server"))
    try:
        yield running
    finally:
        await running.stop()


@pytest_twisted.async_yield_fixture
async def redis_stores(redis_server: RedisProcess) -> AsyncIterator[RedisStores]:
    """
    For what only Redis has: several processes on one Redis.
    """
    running = RedisStores(redis_server)
    try:
        yield running
    finally:
        await running.stop()
