"""
Logging in with a session token: the credentials of C{/resume} and the
C{twisted.cred} checker that accepts them.

A token goes through the same portal and realm as a password, so that a
resumed connection is exactly a logged-in one.  Checking it costs one
SHA-256 and one lookup, where a password costs a bcrypt: what lets every
client of a restarted server come back within seconds.  The tokens
themselves are kept by the backend (L{chat.storage.tokens.ITokenStore}).
"""

# test-case-name: tests.test_sessions

from __future__ import annotations

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, implementer

from chat.storage.accounts import IAccountStore
from chat.storage.tokens import ITokenStore, new_token, token_hash

__all__ = ["ISessionToken", "SessionToken", "TokenChecker", "issue"]


class ISessionToken(ICredentials):
    """
    A user name and a session token (from C{/token}).
    """

    username = Attribute("The account's name, in any case.")
    token = Attribute("The token, as the server gave it.")


@implementer(ISessionToken)
class SessionToken:
    def __init__(self, username: str, token: str) -> None:
        self.username = username
        self.token = token

    def __repr__(self) -> str:
        # Never the token: credentials end up in tracebacks and logs.
        return f"SessionToken({self.username!r}, ...)"


@implementer(ICredentialsChecker)
class TokenChecker:
    """
    Accepts a token its account still has, unexpired; the avatar ID is the
    name as registered.  Only servers whose accounts are chatroom's own
    have one: with another C{--auth} checker, C{/resume} finds no checker
    and is refused like a wrong token.
    """

    credentialInterfaces = (ISessionToken,)

    def __init__(self, tokens: ITokenStore, accounts: IAccountStore, clock: IReactorTime) -> None:
        self.tokens = tokens
        self.accounts = accounts
        self.clock = clock

    # Twisted types avatar IDs as bytes; chatroom's are the str names.
    def requestAvatarId(self, credentials: ISessionToken) -> Deferred[str]:  # type: ignore[override]
        name: str = credentials.username
        digest = token_hash(credentials.token)

        def verdict(valid: bool) -> str:
            spelled = self.accounts.spelling(name) if valid else None
            if spelled is None:
                raise UnauthorizedLogin()
            return spelled

        d: Deferred[bool] = self.tokens.valid(name.lower(), digest, self.clock.seconds())
        return d.addCallback(verdict)


def issue(tokens: ITokenStore, user: str, ttl: float, clock: IReactorTime) -> Deferred[str]:
    """
    Make a new token for C{user}, kept (hashed) for C{ttl} seconds.

    @return: A Deferred firing with the token once it is durable.
    """
    token = new_token()
    d = tokens.add(user.lower(), token_hash(token), clock.seconds() + ttl)
    return d.addCallback(lambda _: token)
