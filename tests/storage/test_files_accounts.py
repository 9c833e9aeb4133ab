"""
The bcrypt user file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import bcrypt
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chat.storage.accounts import IAccountStore
from chat.storage.common import NameTaken, StoreUnavailable
from chat.storage.files.accounts import BcryptFileChecker
from chat.storage.passwords import check_password, hash_password
from tests.helpers import HeldRunner, run_inline


def login(checker: BcryptFileChecker, name: str, password: str) -> Any:
    return checker.requestAvatarId(UsernamePassword(name.encode(), password.encode()))


class HashTests(SynchronousTestCase):
    def test_an_unknown_name_costs_a_bcrypt_of_the_same_rounds(self) -> None:
        # Otherwise how long a failed login takes tells whether the name exists.
        with mock.patch("bcrypt.checkpw", wraps=bcrypt.checkpw) as checkpw:
            self.assertFalse(check_password("password1", None, 5))
        self.assertEqual(checkpw.call_count, 1)
        self.assertTrue(checkpw.call_args[0][1].startswith(b"$2b$05$"))

    def test_every_character_counts(self) -> None:
        password = "p" * 127 + "1"
        stored = hash_password(password, 4)
        self.assertTrue(stored.startswith("bcrypt-sha256$2b$04$"))
        self.assertTrue(check_password(password, stored))
        self.assertFalse(check_password("p" * 127 + "2", stored))
        self.assertFalse(check_password("p" * 72, stored))

    def test_plain_bcrypt_hashes_from_other_tools(self) -> None:
        stored = bcrypt.hashpw(b"password1", bcrypt.gensalt(4)).decode()
        self.assertTrue(check_password("password1", stored))
        self.assertFalse(check_password("password2", stored))
        # bcrypt would compare only the first 72 bytes: refuse instead.
        long = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(4)).decode()
        self.assertFalse(check_password("x" * 72 + "tail", long))

    def test_garbage_hash(self) -> None:
        self.assertFalse(check_password("password1", "bcrypt-sha256$nonsense"))
        self.assertFalse(check_password("password1", "plaintext"))


class CheckerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp()) / "users.txt"
        self.checker = BcryptFileChecker(self.path, rounds=4)

    def test_provides(self) -> None:
        self.assertTrue(verifyObject(IAccountStore, self.checker))

    def test_register_then_login_in_any_case(self) -> None:
        self.successResultOf(self.checker.add_user("Alice", "password1"))
        self.assertEqual(self.successResultOf(login(self.checker, "aLICE", "password1")), "Alice")
        self.failureResultOf(login(self.checker, "Alice", "password2"), UnauthorizedLogin)
        self.failureResultOf(login(self.checker, "nobody", "password1"), UnauthorizedLogin)
        again = BcryptFileChecker(self.path, rounds=4)
        self.assertEqual(self.successResultOf(login(again, "alice", "password1")), "Alice")

    def test_accounts_are_recalled_as_remembered(self) -> None:
        plain = bcrypt.hashpw(b"password1", bcrypt.gensalt(4)).decode()
        for name, stored in [
            ("alice", "bcrypt-sha256$2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),
            ("Bob-2", "bcrypt-sha256$2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234"),
            ("carol", plain),
            ("Dave_", plain),
            ("eve", "bcrypt-sha256$2b$04$with:a:colon"),
        ]:
            self.checker._remember(name, stored)
            self.assertEqual(self.checker._recall(name.lower()), (name, stored), name)
        self.assertIsNone(self.checker._recall("nobody"))

    def test_unknown_names_cost_a_bcrypt_too(self) -> None:
        held = HeldRunner()
        self.checker.run = held
        d = login(self.checker, "nobody", "password1")
        self.assertEqual(len(held.jobs), 1)
        held.release()
        self.failureResultOf(d, UnauthorizedLogin)

    def test_names_are_reserved_while_hashing(self) -> None:
        held = HeldRunner()
        self.checker.run = held
        first = self.checker.add_user("bob", "password1")
        self.assertTrue(self.checker.user_exists("BOB"))
        self.failureResultOf(self.checker.add_user("Bob", "password2"), NameTaken)
        held.release()
        self.successResultOf(first)
        self.assertEqual(self.path.read_text().count("\n"), 1)

    def test_damaged_lines_are_skipped(self) -> None:
        good = hash_password("password1", 4)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            f"alice:{good}\nno colon here\nbad name!:{good}\ncarol:plaintext\n"
            f"ALICE:{good}\nbob:{good}\r\n\n\xff"
        )
        with capturedLogs() as events:
            checker = BcryptFileChecker(self.path, rounds=4)
        self.assertEqual(len([e for e in events if e["log_level"].name == "warn"]), 5)
        self.assertEqual(self.successResultOf(login(checker, "bob", "password1")), "bob")
        self.assertTrue(checker.user_exists("alice"))
        self.assertFalse(checker.user_exists("carol"))

    def test_torn_last_line_does_not_swallow_the_next_account(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("alice:bcrypt-sha256$2b$04$tor")
        with capturedLogs():
            checker = BcryptFileChecker(self.path, rounds=4)
        self.successResultOf(checker.add_user("bob", "password1"))
        again = BcryptFileChecker(self.path, rounds=4)
        self.assertEqual(self.successResultOf(login(again, "bob", "password1")), "bob")

    def test_unwritable_file_is_unavailable_and_frees_the_name(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.mkdir()  # a directory where the file should be
        self.failureResultOf(self.checker.add_user("bob", "password1"), StoreUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(IsADirectoryError)), 1)
        self.assertFalse(self.checker.user_exists("bob"))

    def test_no_password_in_the_logs(self) -> None:
        with capturedLogs() as events:
            self.successResultOf(self.checker.add_user("bob", "sekrit-password"))
            self.failureResultOf(login(self.checker, "bob", "other-sekrit"), UnauthorizedLogin)
        self.assertNotIn("sekrit", repr(events))

    def test_a_change_rewrites_only_its_line_and_keeps_the_file_private(self) -> None:
        good = hash_password("password1", 4)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        damaged = f"no colon here\nbad name!:{good}\n"
        self.path.write_text(f"Alice:{good}\n{damaged}bob:{good}\r\nALICE:{good}\ncarol:torn")
        self.path.chmod(0o600)
        with capturedLogs():
            checker = BcryptFileChecker(self.path, rounds=4)
        self.successResultOf(checker.change_password("alice", "password2"))
        lines = self.path.read_bytes().decode().split("\n")
        self.assertTrue(lines[0].startswith("Alice:bcrypt-sha256$2b$04$"))
        self.assertNotEqual(lines[0], f"Alice:{good}")
        # Every other line as it was, the damaged ones and the second Alice
        # (never an account) too; the torn last line is ended.
        self.assertEqual("\n".join(lines[1:]), f"{damaged}bob:{good}\r\nALICE:{good}\ncarol:torn\n")
        self.assertEqual(self.path.stat().st_mode & 0o777, 0o600)
        self.assertEqual(sorted(p.name for p in self.path.parent.iterdir()), ["users.txt"])
        with capturedLogs():
            again = BcryptFileChecker(self.path, rounds=4)
        self.assertEqual(self.successResultOf(login(again, "ALICE", "password2")), "Alice")
        self.failureResultOf(login(again, "alice", "password1"), UnauthorizedLogin)
        self.assertEqual(self.successResultOf(login(again, "bob", "password1")), "bob")

    def test_the_old_password_works_until_the_new_one_is_stored(self) -> None:
        self.successResultOf(self.checker.add_user("alice", "password1"))
        held = HeldRunner()
        self.checker.run = held
        changed = self.checker.change_password("alice", "password2")
        self.checker.run = run_inline
        self.assertEqual(self.successResultOf(login(self.checker, "alice", "password1")), "alice")
        held.release()
        self.successResultOf(changed)
        self.failureResultOf(login(self.checker, "alice", "password1"), UnauthorizedLogin)
        self.assertEqual(self.successResultOf(login(self.checker, "alice", "password2")), "alice")

    def test_a_change_that_cannot_be_written_changes_nothing(self) -> None:
        self.successResultOf(self.checker.add_user("alice", "password1"))
        self.checker.path = self.path.parent  # a directory, not a file
        self.failureResultOf(self.checker.change_password("alice", "password2"), StoreUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(IsADirectoryError)), 1)
        self.assertEqual(self.successResultOf(login(self.checker, "alice", "password1")), "alice")

    def test_no_new_password_in_the_logs(self) -> None:
        self.successResultOf(self.checker.add_user("bob", "password1"))
        with capturedLogs() as events:
            self.successResultOf(self.checker.change_password("bob", "sekrit-password"))
        self.assertNotIn("sekrit", repr(events))
