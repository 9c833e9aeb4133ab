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
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from chat.storage.accounts import AccountStore, IAccountStore
from chat.storage.common import NameTaken, StoreUnavailable
from tests.helpers import HeldRunner
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
