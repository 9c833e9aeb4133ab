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

from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from chat.storage.common import NameTaken, Runner
from chat.storage.passwords import check_password, decode_credentials

__all__ = ["AccountStore", "IAccountStore"]


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

    def change_password(name: str, password: str) -> Deferred[None]:
        """
        Give an existing account a new password (hashed off the reactor
        thread, at the store's bcrypt cost).  The caller has checked the
        old one.

        @return: A Deferred that fires once the new hash is on stable
            storage (the old one no longer lets anyone in, on any
            process), or fails with L{StoreUnavailable}, the old password
            still in force.
        """

    def user_exists(name: str) -> bool:
        """
        Whether an account of that name exists, in any case.
        """

    def spelling(name: str) -> str | None:
        """
        The account's name as registered, whatever the case of C{name};
        L{None} when there is no such account (yet: one being registered
        has none).
        """


@implementer(ICredentialsChecker, IAccountStore)
class AccountStore:
    """
    What every account store does the same way, whatever holds the
    accounts: names are unique without regard to case, a name is taken
    from the moment its registration starts (bcrypt takes a while, and two
    registrations of one name must not both hash), and a login checks its
    password against a decoy when the name has no account, so that it
    takes as long either way.  A subclass says where accounts are
    (L{_has}, L{_stored}) and how one is added (L{_store}).

    @ivar rounds: The bcrypt cost.
    @ivar run: Where bcrypt runs; the server points it at its own pool.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()
    rounds: int
    run: Runner | None

    def __init__(self) -> None:
        #: The lower-case names being registered.
        self._pending: set[str] = set()

    def _has(self, key: str) -> bool:
        """
        Whether the account whose lower-case name is C{key} exists.
        """
        raise NotImplementedError

    def _spelled(self, key: str) -> str | None:
        """
        The name as registered of the account whose lower-case name is
        C{key}, from memory.
        """
        raise NotImplementedError

    def _stored(self, key: str) -> Deferred[tuple[str, str] | None]:
        """
        The name as registered and the stored hash of the account whose
        lower-case name is C{key}, or L{None} when there is none.
        """
        raise NotImplementedError

    def _store(self, key: str, name: str, password: str) -> Deferred[None]:
        """
        Hash the password and add the account; the name is reserved
        meanwhile.

        @return: A Deferred that fires once the account is durable and
            known here, or fails with L{NameTaken} or L{StoreUnavailable}.
        """
        raise NotImplementedError

    def _replace(self, key: str, password: str) -> Deferred[None]:
        """
        Hash a new password for the existing account whose lower-case
        name is C{key} and store it in place of the old one.
        """
        raise NotImplementedError

    def change_password(self, name: str, password: str) -> Deferred[None]:
        return self._replace(name.lower(), password)

    def user_exists(self, name: str) -> bool:
        key = name.lower()
        return self._has(key) or key in self._pending

    def spelling(self, name: str) -> str | None:
        return self._spelled(name.lower())

    # Twisted types avatar IDs as bytes; chatroom's are the str names.
    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:  # type: ignore[override]
        try:
            name, password = decode_credentials(credentials)
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin())
        assert self.run is not None
        run = self.run

        def check(entry: tuple[str, str] | None) -> Deferred[str]:
            known, stored = entry if entry is not None else ("", None)

            def verdict(ok: bool) -> str:
                if ok and entry is not None:
                    return known
                raise UnauthorizedLogin()

            checked: Deferred[bool] = run(check_password, password, stored, self.rounds)
            return checked.addCallback(verdict)

        return self._stored(name.lower()).addCallback(check)

    def add_user(self, name: str, password: str) -> Deferred[None]:
        key = name.lower()
        if self.user_exists(name):
            return fail(NameTaken(name))
        self._pending.add(key)

        def done(result: Any) -> Any:
            self._pending.discard(key)
            if not isinstance(result, Failure):
                self.log.info("Registered account {name}", name=name)
            return result

        return self._store(key, name, password).addBoth(done)
