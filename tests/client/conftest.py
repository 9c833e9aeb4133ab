"""
Fixtures of the client's tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.client.helpers import PipeClient


@pytest.fixture
def india_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Local time five and a half hours ahead of UTC (a POSIX TZ rule, so no
    tz database is needed), to show that times are rendered locally.
    """
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def pipe_clients() -> Iterator[list[PipeClient]]:
    clients: list[PipeClient] = []
    yield clients
    for client in clients:
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait()
