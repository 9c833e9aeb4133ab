"""
Session tokens and passwords on a line connection: C{/token},
C{/logout-all} and the guided C{/password} dialog.  (C{/resume} is a login,
in L{chat.wire.login}.)

Like L{chat.wire.login.LoginFlow}, a part of
L{chat.wire.protocol.ChatProtocol} with no state of its own: the dialog's
step is kept in the connection's C{_dialog}, as the login dialog's is.
"""

# test-case-name: tests.test_sessions

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from chat.avatar import ChatUser
from chat.commands import MAX_PASSWORD, MIN_PASSWORD, CommandError
from chat.errors import ChatError, ErrorCode
from chat.lines import format_line
from chat.sessions import issue
from chat.storage.common import StoreUnavailable

if TYPE_CHECKING:
    from chat.wire.login import LoginFactory

__all__ = ["SessionCommands"]

T = TypeVar("T")


class SessionCommands:
    if TYPE_CHECKING:
        log: Logger
        factory: LoginFactory
        closing: bool
        _dialog: tuple[str, str] | None

        @property
        def peer(self) -> str: ...

        def _avatar(self) -> ChatUser: ...
        def send(self, tag: str, *args: str, text: str | None = None) -> None: ...
        def error(self, code: ErrorCode, text: str) -> None: ...
        def pauseProducing(self) -> None: ...
        def _resume(self) -> None: ...
        def _bug(self, failure: Failure) -> None: ...
        def _later(self, d: Deferred[T], answer: Callable[[T], bytes]) -> None: ...
        def _check_throttle(self, name: str) -> None: ...
        def _throttle_keys(self, name: str) -> list[str]: ...
        def _begin_slow_work(self) -> None: ...
        def _end_slow_work(self, result: Any) -> Any: ...

    def _tokens(self) -> Any:
        service = self.factory.service
        if self.factory.accounts is None:
            raise CommandError(
                ErrorCode.UNAVAILABLE,
                "this server's accounts are not chatroom's own: no session tokens here",
            )
        return service.tokens

    def do_token(self) -> None:
        user = self._avatar()
        service = self.factory.service
        d = issue(self._tokens(), user.name, service.token_ttl, self.factory.clock)
        self._later(d.addErrback(_unavailable), lambda token: format_line("OK", "token", token))

    def do_logout_all(self) -> None:
        user = self._avatar()
        d = self._tokens().revoke_all(user.key)
        self._later(d.addErrback(_unavailable), lambda _: format_line("OK", "logout-all"))

    # /password: current password, new password, OK

    def do_password(self) -> None:
        user = self._avatar()
        if self.factory.accounts is None:
            raise CommandError(
                ErrorCode.UNAVAILABLE,
                "this server's accounts are not chatroom's own: change your password there",
            )
        self._check_throttle(user.name)
        self._dialog = ("password", "current")
        self.send("PROMPT", "password", text="current password:")

    def password_line(self, step: str, password: str) -> None:
        """
        One line of the dialog, which L{chat.wire.login.LoginFlow} has
        taken out of it: the dialog goes on only where this says so.
        """
        try:
            if step == "current":
                self._check_current(password)
            else:
                self._change(password)
        except CommandError as e:
            self.error(e.code, e.detail)

    def _check_current(self, password: str) -> None:
        """
        Check the current password as a login would (bcrypt in a thread,
        the failed-login throttle), without logging in again.
        """
        user = self._avatar()
        accounts = self.factory.accounts
        assert accounts is not None
        self._check_throttle(user.name)
        self._begin_slow_work()
        credentials = UsernamePassword(user.name.encode("utf-8"), password.encode("utf-8"))
        d: Deferred[str] = accounts.requestAvatarId(credentials)  # type: ignore[attr-defined]
        d.addBoth(self._end_slow_work)

        def right(_: object) -> None:
            if self.closing:
                return
            self.factory.throttle.succeeded("user:" + user.key)
            self._dialog = ("password", "new")
            self.send("PROMPT", "password", text="new password:")
            self._resume()

        def wrong(failure: Failure) -> None:
            if self.closing:
                return
            if not failure.check(LoginFailed):
                self.log.failure("Checking {user}'s password failed", failure, user=user.name)
                self.error(ErrorCode.UNAVAILABLE, "cannot check accounts right now; try again")
                self._resume()
                return
            self.log.info(
                "Wrong current password for {user} from {peer}", user=user.name, peer=self.peer
            )
            delay = self.factory.throttle.failed(self._throttle_keys(user.name))

            def answer() -> None:
                if not self.closing:
                    self.error(ErrorCode.BAD_CREDENTIALS, "wrong password; it is unchanged")
                    self._resume()

            if delay:
                self.factory.clock.callLater(delay, answer)
            else:
                answer()

        d.addCallbacks(right, wrong)
        d.addErrback(self._bug)

    def _change(self, password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise CommandError(
                ErrorCode.WEAK_PASSWORD,
                f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters; it is unchanged",
            )
        user = self._avatar()
        accounts = self.factory.accounts
        assert accounts is not None
        self._begin_slow_work()
        d = accounts.change_password(user.name, password)
        d.addBoth(self._end_slow_work)
        # A new password ends every session made with the old one.
        d.addCallback(lambda _: self.factory.service.tokens.revoke_all(user.key))

        def changed(_: object) -> None:
            self.log.info("{user} changed its password", user=user.name)

        d.addCallback(changed)
        self._later(d.addErrback(_unavailable), lambda _: format_line("OK", "password"))


def _unavailable(failure: Failure) -> Any:
    if failure.check(StoreUnavailable):
        raise ChatError(ErrorCode.UNAVAILABLE, "cannot store that right now; try again")
    return failure
