"""
Accounts: who may log in, and adding to them (C{/register}).

An account store is also the credentials checker (C{IUsernamePassword} to
the name as registered), so that one object says both who exists and who
may log in.  Implementations: L{chat.storage.files.accounts.BcryptFileChecker}
(C{DATA/users.txt}) and L{chat.storage.redis.accounts.RedisAccounts} (the
Redis hash C{users}).  Contract: L{tests.storage.test_accounts}.
"""

# test-case-name: tests.storage.test_accounts

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Interface

__all__ = ["IAccountStore"]


class IAccountStore(Interface):
    """
    A place where accounts can be added.  A credentials checker that also
    provides this lets users C{/register}; one that does not closes
    registration.
    """

    def add_user(name: str, password: str) -> Deferred[None]:
        """
        Create an account.

        @return: A Deferred that fires with L{None} once the account is on
            stable storage, or fails with L{NameTaken} or
            L{StoreUnavailable}.
        """

    def user_exists(name: str) -> bool:
        """
        Whether an account of that name exists, in any case.
        """
