"""
Logging in on the line protocol: C{/login}, C{/register}, the guided
dialog that asks for a name and a password, and the accounting around
bcrypt (the bounded queue of pending logins, the failed-login throttle,
registrations per address).

L{LoginFlow} is a part of L{chat.wire.protocol.ChatProtocol}, kept in a
module of its own; it holds no state of its own, so a connection costs
not a byte more for it.
"""

# test-case-name: tests.test_protocol, tests.test_guard

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chat.avatar import ChatRealm, ChatUser
from chat.commands import MAX_PASSWORD, MIN_PASSWORD, CommandError, valid_name
from chat.errors import ErrorCode
from chat.guard import Limits, LoginThrottle, Quota, minutes
from chat.interfaces import IAccountStore, IChatUser, NameTaken, StoreUnavailable
from chat.service import ChatService
from chat.sessions import SessionToken
from chat.storage.direct import Unread
from chat.wire.encoder import LineEncoder

__all__ = ["OWN_LOGOUT", "LoginFactory", "LoginFlow"]


class LoginFactory(Protocol):
    """
    What logging in needs of the factory that made the connection
    (L{chat.wire.protocol.ChatFactory}): what all its connections share.
    """

    service: ChatService
    portal: Portal
    realm: ChatRealm
    accounts: IAccountStore | None
    clock: IReactorTime
    limits: Limits
    throttle: LoginThrottle
    #: Registrations that cost a bcrypt, per address key.
    registrations: Quota
    #: How many bcrypt jobs are queued or running.
    pending_logins: int


def OWN_LOGOUT() -> None:
    """
    Stands in C{ChatProtocol._logout} for the logged-in user's own
    C{logout}; never called.
    """


class LoginFlow:
    """
    The login commands of a line connection.
    """

    if TYPE_CHECKING:
        # What the connection provides.
        log: Logger
        factory: LoginFactory
        closing: bool
        user: ChatUser | None
        address: str | None

        @property
        def peer(self) -> str: ...

        _dialog: tuple[str, str] | None
        _logout: Callable[[], None] | None

        encoder: ClassVar[LineEncoder]

        def send(self, tag: str, *args: str, text: str | None = None) -> None: ...
        def write(self, data: bytes) -> None: ...
        def error(self, code: ErrorCode, text: str) -> None: ...
        def pauseProducing(self) -> None: ...
        def resumeProducing(self) -> None: ...
        def do_rooms(self) -> None: ...
        def _stop_login_timer(self) -> None: ...
        def _bug(self, failure: Failure) -> None: ...
        def _resume(self) -> None: ...
        def password_line(self, step: str, password: str) -> None: ...

    def do_login(self, name: str, password: str) -> None:
        self._dialog = None
        self._authenticate(name, password)

    def do_register(self, name: str, password: str) -> None:
        self._dialog = None
        accounts = self.factory.accounts
        if accounts is None:
            raise CommandError(
                ErrorCode.REGISTRATION_CLOSED, "this server does not take new accounts"
            )
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise CommandError(
                ErrorCode.WEAK_PASSWORD,
                f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            )
        if accounts.user_exists(name):
            raise CommandError(ErrorCode.NAME_TAKEN, f"{name} is taken")
        self._check_registrations()
        self._begin_slow_work()
        if self.address is not None:
            # Counted once it costs a bcrypt, whatever becomes of it.
            self.factory.registrations.spend(self.address)
        d: Deferred[None] = accounts.add_user(name, password)  # type: ignore[assignment]
        d.addBoth(self._end_slow_work)
        d.addCallbacks(lambda _: self._registered(name), self._register_failed)
        d.addErrback(self._bug)

    def do_dialog(self, kind: str) -> None:
        if kind == "register":
            if self.factory.accounts is None:
                raise CommandError(
                    ErrorCode.REGISTRATION_CLOSED, "this server does not take new accounts"
                )
            # Say so before asking for a name and a password.
            self._check_registrations()
        self._dialog = (kind, "")
        self.send("PROMPT", "username", text="user name:")

    def dialog_username(self, name: str) -> None:
        assert self._dialog is not None
        kind = self._dialog[0]
        if not valid_name(name):
            self.error(ErrorCode.BAD_NAME, "names are 1 to 32 of A-Z a-z 0-9 _ -")
        elif (
            kind == "register" and self.factory.accounts and self.factory.accounts.user_exists(name)
        ):
            self.error(ErrorCode.NAME_TAKEN, f"{name} is taken")
        else:
            self._dialog = (kind, name)
            self.send("PROMPT", "password", text="password:")
            return
        self.send("PROMPT", "username", text="user name:")

    def dialog_password(self, password: str) -> None:
        assert self._dialog is not None
        kind, name = self._dialog
        # Back to AUTH before the answer, which may come at once and move on
        # to LOBBY.
        self._dialog = None
        if kind == "login":
            self.do_login(name, password)
            return
        if kind == "password":
            # A logged-in user changing its password (L{chat.wire.sessions}).
            self.password_line(name, password)
            return
        try:
            self.do_register(name, password)
        except CommandError as e:
            self.error(e.code, e.detail)
            if e.code is ErrorCode.WEAK_PASSWORD:
                self._dialog = (kind, name)
                self.send("PROMPT", "password", text="password:")

    def _check_registrations(self) -> None:
        """
        @raise CommandError: This address has registered as many accounts
            as it may for now (C{--max-registrations-per-ip}).
        """
        if self.address is None:
            return
        quota = self.factory.registrations
        wait = quota.wait(self.address)
        if wait:
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                f"your address may register {quota.limit} accounts an hour; "
                f"try again in {minutes(wait)}",
            )

    def _throttle_keys(self, name: str) -> list[str]:
        keys = ["user:" + name.lower()]
        if self.address is not None:
            keys.append("addr:" + self.address)
        return keys

    def _check_throttle(self, name: str) -> None:
        """
        @raise CommandError: Too many failed logins for this name or address.
        """
        wait = self.factory.throttle.locked(self._throttle_keys(name))
        if wait:
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                f"too many failed logins; try again in {int(wait) + 1} s",
            )

    def _authenticate(self, name: str, password: str) -> None:
        factory = self.factory
        self._check_throttle(name)
        self._begin_slow_work()
        credentials = UsernamePassword(name.encode("utf-8"), password.encode("utf-8"))
        d = factory.portal.login(credentials, self, IChatUser)
        d.addBoth(self._end_slow_work)
        d.addCallbacks(self._logged_in, self._login_failed, errbackArgs=(name,))
        d.addErrback(self._bug)

    def do_resume(self, name: str, token: str) -> None:
        """
        Log in with a session token: the same portal, realm and answer as
        C{/login}, and the same throttle, without a bcrypt.
        """
        self._dialog = None
        self._check_throttle(name)
        self.pauseProducing()
        d = self.factory.portal.login(SessionToken(name, token), self, IChatUser)
        d.addCallbacks(self._logged_in, self._login_failed, errbackArgs=(name, "token"))
        d.addErrback(self._bug)

    def _begin_slow_work(self) -> None:
        """
        Account for one more bcrypt in flight, refusing it when the queue
        is already long: a login storm waits in a bounded line.
        """
        factory = self.factory
        limit = factory.limits.max_pending_logins
        if limit and factory.pending_logins >= limit:
            raise CommandError(ErrorCode.UNAVAILABLE, "the server is busy; try again shortly")
        factory.pending_logins += 1
        self.pauseProducing()

    def _end_slow_work(self, result: Any) -> Any:
        self.factory.pending_logins -= 1
        return result

    def _logged_in(
        self, result: tuple[Any, ChatUser, Callable[[], None]], verb: str = "login"
    ) -> None:
        _, user, logout = result
        if self.closing:
            # The client hung up, or the server said BYE, while bcrypt ran.
            logout()
            return
        service = self.factory.service
        if service.locked(user.name):
            # Said only after the right password, so that a lock tells a
            # guesser nothing.
            logout()
            self.log.info("Refused {user}: the account is locked", user=user.name)
            reason = service.rules.locks.get(user.key) or ""
            self.error(
                ErrorCode.LOCKED,
                f"this account is locked: {reason}" if reason else "this account is locked",
            )
            self._resume()
            return
        # The realm's logout is the user's own: rather than keep that bound
        # method (64 bytes a connection), say so and call it when needed.
        self.user = user
        self._logout = OWN_LOGOUT if logout == user.logout else logout
        self.factory.throttle.succeeded("user:" + user.key)
        self.factory.service.outage.over()
        self._stop_login_timer()
        # A new account has missed nothing.
        welcome = self.factory.service.logged_in(user, unread=verb == "login")
        welcome.addCallbacks(
            self._welcome,
            self._unread_failed,
            callbackArgs=(user, verb),
            errbackArgs=(user, verb),
        )
        welcome.addErrback(self._bug)

    def _welcome(
        self, unread: Unread | None, user: ChatUser, verb: str, unread_lost: bool = False
    ) -> None:
        """
        Answer the login once the user counts as online everywhere: its
        C{OK}, the room list, and what the user missed while away.
        """
        if self.closing:
            return
        self.log.info(
            "{user} logged in ({verb}) from {peer}", user=user.name, verb=verb, peer=self.peer
        )
        self.send("OK", verb, user.name)
        self.do_rooms()
        if unread is not None and (unread.messages or unread.older):
            self.write(self.encoder.unread(user.key, unread.messages, unread.older))
        if unread_lost:
            self.error(
                ErrorCode.UNAVAILABLE,
                "cannot read your unread private messages right now; see /dms",
            )
        self.factory.service.welcomed(user)
        self.resumeProducing()

    def _unread_failed(self, failure: Failure, user: ChatUser, verb: str) -> None:
        if self.closing:
            return
        if failure.check(StoreUnavailable):
            self.factory.service.outage.refuse(
                "unread messages", 1, failure.value, action="read unread messages", who="users"
            )
        else:
            self.log.failure("Could not read {user}'s unread messages", failure, user=user.name)
        self._welcome(None, user, verb, unread_lost=True)

    def _login_failed(self, failure: Failure, name: str, secret: str = "password") -> None:
        if self.closing:
            return
        outage = self.factory.service.outage
        if not failure.check(LoginFailed):
            if failure.check(StoreUnavailable):
                outage.refuse("logins", 1, failure.value, action="check logins", who="users")
            else:
                self.log.failure("Login as {user} failed", failure, user=name)
            self.error(ErrorCode.UNAVAILABLE, "cannot check accounts right now; try again")
            self._resume()
            return
        outage.over()
        self.log.info("Failed login as {user} from {peer}", user=name, peer=self.peer)
        delay = self.factory.throttle.failed(self._throttle_keys(name))

        def answer() -> None:
            if not self.closing:
                self.error(ErrorCode.BAD_CREDENTIALS, f"wrong name or {secret}")
                self._resume()

        if delay:
            # Held back, with the connection paused: guessing gets slower.
            self.factory.clock.callLater(delay, answer)
        else:
            answer()

    def _registered(self, name: str) -> None:
        realm: ChatRealm = self.factory.realm
        self._logged_in(realm.requestAvatar(name, self, IChatUser), verb="register")

    def _register_failed(self, failure: Failure) -> None:
        if self.closing:
            return
        if failure.check(NameTaken):
            self.error(ErrorCode.NAME_TAKEN, "that name is taken")
        else:
            if failure.check(StoreUnavailable):
                self.factory.service.outage.refuse(
                    "registrations", 1, failure.value, action="add accounts", who="users"
                )
            else:
                self.log.failure("Registration failed", failure)
            self.error(ErrorCode.UNAVAILABLE, "cannot store the account right now; try again")
        self._resume()
