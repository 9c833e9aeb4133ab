"""
What every store shares: its two failures, and where blocking work goes.
"""

# test-case-name: tests.storage.test_rooms, tests.storage.test_accounts

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

__all__ = ["NameTaken", "Runner", "StoreUnavailable"]


class StoreUnavailable(Exception):
    """
    The store could not do what was asked (disk full, unwritable directory,
    backend gone) and left nothing half-done.  Clients see C{ERR unavailable}.
    """


class NameTaken(Exception):
    """
    The name (of an account or a room) already exists, in some spelling.
    """


#: Runs a blocking callable off the reactor thread and fires with its result:
#: C{functools.partial(deferToThreadPool, reactor, pool)} in the server, a
#: synchronous stand-in in unit tests.
Runner = Callable[..., "Deferred[Any]"]
