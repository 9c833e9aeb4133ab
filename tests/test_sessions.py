"""
Session tokens, C{/resume}, password changes and the restart's
C{RECONNECT}: the protocol contract, line by line, against an in-memory
server on the file store (the token stores themselves:
L{tests.storage.test_tokens}).
"""

from __future__ import annotations

import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from chat.guard import Limits
from chat.lines import parse_line
from chat.storage.tokens import token_hash
from tests.helpers import Chat, Client, temp_dir

DAY = 24 * 3600


class _Case(SynchronousTestCase):
    def setUp(self) -> None:
        self.data = temp_dir(self)
        self.chat = self.make_chat()

    def make_chat(self, **kwargs: Any) -> Chat:
        kwargs.setdefault("limits", Limits(flood_rate=0, login_timeout=0))
        kwargs.setdefault("admins", ("root",))
        chat = Chat(self.data, **kwargs)
        chat.clock.advance(1_790_000_000)
        return chat

    def token(self, client: Client) -> str:
        client.send("/token")
        [line] = client.take()
        parsed = parse_line(line)
        self.assertEqual(parsed.args[:1], ("token",), line)
        return parsed.args[1]

    def resume(self, name: str, token: str) -> tuple[Client, list[str]]:
        client = self.chat.connect()
        client.take()
        client.send(f"/resume {name} {token}")
        return client, client.take()


class TokenTests(_Case):
    def test_a_token_is_long_random_and_printable(self) -> None:
        alice = self.chat.user("alice")
        tokens = {self.token(alice) for _ in range(5)}
        self.assertEqual(len(tokens), 5)
        for token in tokens:
            # 128 bits at least: 22 characters of base64 or more.
            self.assertRegex(token, r"\A[A-Za-z0-9_-]{22,}\Z")

    def test_resume_gives_exactly_what_a_login_gives(self) -> None:
        alice = self.chat.user("Alice")
        token = self.token(alice)
        bob = self.chat.user("bob")
        alice.send("/quit")
        bob.send("/msg alice while you were away")
        bob.take()
        login = self.chat.connect()
        login.take()
        _, resumed = self.resume("ALICE", token)
        self.assertEqual(resumed[0], "OK login Alice")
        self.assertIn("END rooms", resumed)
        self.assertEqual(resumed[-1], "END unread")
        self.assertTrue(resumed[-2].endswith(" bob :while you were away"))

    def test_no_password_hash_is_computed(self) -> None:
        alice = self.chat.user("alice")
        token = self.token(alice)
        checker = self.chat.checker
        checked: list[Any] = []
        original = checker.requestAvatarId
        checker.requestAvatarId = lambda c: checked.append(c) or original(c)
        _, lines = self.resume("alice", token)
        self.assertEqual(lines[0], "OK login alice")
        self.assertEqual(checked, [])

    def test_a_wrong_token_is_bad_credentials_and_counts_as_a_failed_login(self) -> None:
        alice = self.chat.user("alice")
        token = self.token(alice)
        client = self.chat.connect()
        client.take()
        for _ in range(20):
            client.send(f"/resume alice {token[:-2]}xx")
            self.chat.clock.advance(31)
        self.assertEqual(set(client.take()), {"ERR bad-credentials :wrong name or token"})
        # Locked out by the throttle, the right token included.
        client.send(f"/resume alice {token}")
        [line] = client.take()
        self.assertTrue(line.startswith("ERR rate-limited :too many failed logins"), line)

    def test_another_users_token_is_refused(self) -> None:
        token = self.token(self.chat.user("alice"))
        self.chat.user("bob")
        self.assertEqual(self.resume("bob", token)[1], ["ERR bad-credentials :wrong name or token"])

    def test_a_token_expires(self) -> None:
        self.chat.service.token_ttl = 2 * DAY
        alice = self.chat.user("alice")
        token = self.token(alice)
        self.chat.clock.advance(DAY)
        self.assertEqual(self.resume("alice", token)[1][0], "OK login alice")
        self.chat.clock.advance(DAY + 1)
        self.assertEqual(
            self.resume("alice", token)[1], ["ERR bad-credentials :wrong name or token"]
        )

    def test_only_the_hash_is_stored(self) -> None:
        alice = self.chat.user("alice")
        token = self.token(alice)
        stored = b"".join(path.read_bytes() for path in self.data.rglob("*") if path.is_file())
        self.assertNotIn(token.encode(), stored)
        self.assertIn(token_hash(token).encode(), stored)

    def test_tokens_survive_a_restart(self) -> None:
        token = self.token(self.chat.user("alice"))
        self.chat.stop()
        self.chat = self.make_chat()
        self.assertEqual(self.resume("alice", token)[1][0], "OK login alice")

    def test_resume_then_commands_as_after_a_login(self) -> None:
        token = self.token(self.chat.user("alice"))
        client, _ = self.resume("alice", token)
        client.send("/join general")
        self.assertEqual(client.take(), ["OK join general", "END history general"])

    def test_resume_only_before_logging_in(self) -> None:
        alice = self.chat.user("alice")
        token = self.token(alice)
        alice.send(f"/resume alice {token}")
        self.assertEqual(alice.take(), ["ERR bad-state :you are already logged in"])


class RevocationTests(_Case):
    def test_logout_all_revokes_every_token(self) -> None:
        alice = self.chat.user("alice")
        first, second = self.token(alice), self.token(alice)
        alice.send("/logout-all")
        self.assertEqual(alice.take(), ["OK logout-all"])
        for token in (first, second):
            self.assertEqual(
                self.resume("alice", token)[1], ["ERR bad-credentials :wrong name or token"]
            )
        # A new one works.
        self.assertEqual(self.resume("alice", self.token(alice))[1][0], "OK login alice")

    def test_a_lock_revokes_them(self) -> None:
        token = self.token(self.chat.user("alice"))
        root = self.chat.user("root")
        root.send("/lock alice")
        self.assertEqual(root.take(), ["OK lock alice"])
        root.send("/unlock alice")
        root.take()
        self.assertEqual(
            self.resume("alice", token)[1], ["ERR bad-credentials :wrong name or token"]
        )

    def test_a_locked_account_cannot_resume(self) -> None:
        token = self.token(self.chat.user("alice"))
        # Locked by hand, as another process's lock could be seen before
        # its revocation.
        self.chat.service.rules.locks["alice"] = ""
        self.assertEqual(self.resume("alice", token)[1], ["ERR locked :this account is locked"])


class PasswordTests(_Case):
    def test_the_dialog_changes_it_and_revokes_tokens(self) -> None:
        alice = self.chat.user("alice")
        other = self.chat.user("alice", register=False)
        token = self.token(alice)
        alice.send("/password")
        self.assertEqual(alice.take(), ["PROMPT password :current password:"])
        alice.send("password1")
        self.assertEqual(alice.take(), ["PROMPT password :new password:"])
        alice.send("a new  pass phrase")
        self.assertEqual(alice.take(), ["OK password"])
        # Still logged in, both connections.
        alice.send("/join general")
        self.assertEqual(alice.take()[0], "OK join general")
        other.send("/rooms")
        self.assertEqual(other.take()[-1], "END rooms")
        self.assertEqual(
            self.resume("alice", token)[1], ["ERR bad-credentials :wrong name or token"]
        )
        old = self.chat.connect()
        old.take()
        old.send("/login alice password1")
        self.assertTrue(old.take()[0].startswith("ERR bad-credentials"))
        self.chat.user("alice", "a new  pass phrase", register=False)

    def test_a_wrong_current_password_ends_the_dialog(self) -> None:
        alice = self.chat.user("alice")
        alice.send("/password", "not my password")
        self.chat.clock.advance(60)
        self.assertEqual(
            alice.take(),
            [
                "PROMPT password :current password:",
                "ERR bad-credentials :wrong password; it is unchanged",
            ],
        )
        alice.send("/rooms")
        self.assertEqual(alice.take()[-1], "END rooms")
        self.chat.user("alice", register=False)

    def test_a_weak_new_password_ends_the_dialog(self) -> None:
        alice = self.chat.user("alice")
        alice.send("/password", "password1", "short")
        self.assertEqual(
            alice.take(),
            [
                "PROMPT password :current password:",
                "PROMPT password :new password:",
                "ERR weak-password :passwords are 8 to 128 characters; it is unchanged",
            ],
        )
        self.chat.user("alice", register=False)

    def test_lines_in_the_dialog_are_passwords_not_commands(self) -> None:
        alice = self.chat.user("alice")
        alice.send("/join general")
        alice.take()
        bob = self.chat.user("bob")
        bob.send("/join general")
        bob.take()
        alice.take()
        alice.send("/password", "password1", "/who is a fine password")
        self.assertEqual(alice.take()[-1], "OK password")
        self.assertEqual(bob.take(), [])
        self.chat.user("alice", "/who is a fine password", register=False)

    def test_quit_still_leaves(self) -> None:
        alice = self.chat.user("alice")
        alice.send("/password", "/quit")
        self.assertEqual(alice.take()[-1], "BYE :Goodbye")


class RestartTests(_Case):
    def test_every_connection_is_told_when_to_come_back_before_bye(self) -> None:
        clients = [self.chat.user(f"user{i}") for i in range(10)]
        waiting = self.chat.connect()
        waiting.take()
        self.chat.stop()
        delays = []
        for client in [*clients, waiting]:
            lines = client.take()
            self.assertEqual(len(lines), 2, lines)
            match = re.fullmatch(r"RECONNECT (\d+)", lines[0])
            assert match is not None, lines
            delays.append(int(match.group(1)))
            self.assertEqual(lines[1], "BYE :server shutting down")
        self.assertTrue(all(1 <= d <= 5 for d in delays), delays)
        # Spread: not all at once.
        self.assertGreaterEqual(len(set(delays)), 4)

    def test_a_lock_or_quit_says_no_reconnect(self) -> None:
        alice = self.chat.user("alice")
        alice.send("/quit")
        self.assertEqual(alice.take(), ["BYE :Goodbye"])
