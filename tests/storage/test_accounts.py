"""
The contract of L{chat.storage.accounts.IAccountStore} and the credentials
checker it comes with: the same test bodies on the user file
(L{chat.storage.files.accounts.BcryptFileChecker}) and on Redis
(L{chat.storage.redis.accounts.RedisAccounts}).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.storage.accounts import AccountStore, IAccountStore
from chat.storage.common import NameTaken, StoreUnavailable
from tests.helpers import HeldRunner, run_inline
from tests.storage.backends import Stores, within


async def login(checker: Any, name: str, password: str) -> str:
    credentials = UsernamePassword(name.encode(), password.encode())
    return await within(checker.requestAvatarId(credentials))  # type: ignore[no-any-return]


@pytest_twisted.ensureDeferred
async def test_provides(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    assert verifyObject(IAccountStore, accounts)
    assert verifyObject(ICredentialsChecker, accounts)
    # Name checks, reservations and the password check are one code.
    assert isinstance(accounts, AccountStore)


@pytest_twisted.ensureDeferred
async def test_register_then_login_in_any_case(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    assert not accounts.user_exists("alice")
    assert await within(accounts.add_user("Alice", "password1")) is None
    assert accounts.user_exists("aLiCe")
    assert await login(accounts, "aLICE", "password1") == "Alice"


@pytest_twisted.ensureDeferred
async def test_names_are_spelled_as_registered_after_a_restart(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    assert accounts.spelling("alice") is None
    await within(accounts.add_user("AlIce", "password1"))
    assert accounts.spelling("ALICE") == "AlIce"
    await within(accounts.add_user("bob", "password1"))
    _, _, again = await stores.start(accounts=True)
    assert again.spelling("alice") == "AlIce"
    assert again.spelling("BOB") == "bob"
    assert again.spelling("carol") is None


@pytest_twisted.ensureDeferred
async def test_wrong_password_and_unknown_name_are_refused(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    with pytest.raises(UnauthorizedLogin):
        await login(accounts, "Alice", "password2")
    with pytest.raises(UnauthorizedLogin):
        await login(accounts, "nobody", "password1")
    with pytest.raises(UnauthorizedLogin):
        await within(accounts.requestAvatarId(UsernamePassword(b"\xff", b"password1")))


@pytest_twisted.ensureDeferred
async def test_a_name_is_taken_in_any_case(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    with pytest.raises(NameTaken):
        await within(accounts.add_user("ALICE", "password2"))
    assert await login(accounts, "alice", "password1") == "Alice"


@pytest_twisted.ensureDeferred
async def test_names_are_reserved_while_hashing(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    held = HeldRunner()
    accounts.run = held
    first = accounts.add_user("bob", "password1")
    assert accounts.user_exists("BOB")
    with pytest.raises(NameTaken):
        await within(accounts.add_user("Bob", "password2"))
    held.release()
    await within(first)
    assert accounts.user_exists("bob")


@pytest_twisted.ensureDeferred
async def test_accounts_survive_a_restart_and_are_shared(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    _, _, again = await stores.start(accounts=True)
    assert again.user_exists("alice")
    assert await login(again, "ALICE", "password1") == "Alice"


@pytest_twisted.ensureDeferred
async def test_unavailable_frees_the_name(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    stores.break_()
    with capturedLogs():
        with pytest.raises(StoreUnavailable):
            await within(accounts.add_user("bob", "password1"))
    assert not accounts.user_exists("bob")


class LateRunner:
    """
    A thread pool stand-in that runs each job at once, as a thread would,
    but tells its result only when the test releases it: what a job did is
    on disk before the reactor hears of it.
    """

    def __init__(self) -> None:
        self.done: list[tuple[Deferred[Any], Any]] = []

    def __call__(self, f: Any, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.done.append((d, maybeDeferred(f, *args)))
        return d

    def release(self) -> None:
        done, self.done = self.done, []
        for d, result in done:
            result.chainDeferred(d)


@pytest_twisted.ensureDeferred
async def test_a_changed_password_replaces_the_old_one_everywhere(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    # Started before the change: on Redis, another process of the cluster.
    _, _, other = await stores.start(accounts=True)
    assert await within(accounts.change_password("ALICE", "new password 2")) is None
    with pytest.raises(UnauthorizedLogin):
        await login(accounts, "alice", "password1")
    assert await login(accounts, "alice", "new password 2") == "Alice"
    assert accounts.spelling("alice") == "Alice"
    if stores.kind == "redis":
        with pytest.raises(UnauthorizedLogin):
            await login(other, "alice", "password1")
        assert await login(other, "alice", "new password 2") == "Alice"
    # A restart (or a process started after it) agrees.
    _, _, again = await stores.start(accounts=True)
    with pytest.raises(UnauthorizedLogin):
        await login(again, "alice", "password1")
    assert await login(again, "ALICE", "new password 2") == "Alice"
    assert again.spelling("alice") == "Alice"


@pytest_twisted.ensureDeferred
async def test_a_change_leaves_other_accounts_alone(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    await within(accounts.add_user("Bob", "password2"))
    await within(accounts.change_password("alice", "password3"))
    await within(accounts.change_password("alice", "password4"))
    _, _, again = await stores.start(accounts=True)
    assert await login(again, "bob", "password2") == "Bob"
    assert await login(again, "alice", "password4") == "Alice"
    with pytest.raises(UnauthorizedLogin):
        await login(again, "alice", "password3")


@pytest_twisted.ensureDeferred
async def test_a_registration_racing_a_change_is_not_lost(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    late = LateRunner()
    accounts.run = late
    # Bob's line is written before this process remembers him, and the
    # change is made meanwhile.
    registered = accounts.add_user("Bob", "password2")
    changed = accounts.change_password("alice", "password3")
    late.release()
    await within(registered)
    await within(changed)
    accounts.run = run_inline
    for checker in (accounts, (await stores.start(accounts=True))[2]):
        assert checker.user_exists("bob")
        assert await login(checker, "bob", "password2") == "Bob"
        assert await login(checker, "alice", "password3") == "Alice"


@pytest_twisted.ensureDeferred
async def test_a_failed_change_keeps_the_old_password(stores: Stores) -> None:
    _, _, accounts = await stores.start(accounts=True)
    await within(accounts.add_user("Alice", "password1"))
    stores.break_()
    with capturedLogs():
        with pytest.raises(StoreUnavailable):
            await within(accounts.change_password("alice", "password2"))
    if stores.kind == "files":
        # Nothing written, nothing remembered.
        assert await login(accounts, "alice", "password1") == "Alice"
    stores.repair()
    _, _, again = await stores.start(accounts=True)
    assert await login(again, "alice", "password1") == "Alice"
    with pytest.raises(UnauthorizedLogin):
        await login(again, "alice", "password2")
