"""
Private messages on files (L{chat.storage.files.direct}): what the
contract suite cannot see, the layout on disk, torn and failed writes,
open descriptors, the sync, and paging through long or disordered files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from chat.message import Message, format_timestamp, parse_timestamp
from chat.storage.common import StoreUnavailable
from chat.storage.direct import DirectMessage, Unread
from chat.storage.files.direct import DirectFiles, read_page
from chat.storage.files.logs import OpenFiles
from chat.storage.files.rooms import FileChatStore, LocalBackend
from tests.helpers import run_inline
from tests.storage.backends import STAMP, Recorder
from tests.test_store import fsyncs, open_files


def stamp(ms: int) -> str:
    return format_timestamp(parse_timestamp(STAMP) + ms / 1000)


class DirectFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.data = Path(self.mktemp())
        self.store = FileChatStore(self.data, run=run_inline, max_open=4)
        self.backend = LocalBackend(self.store, Clock(), sync_interval=0)
        self.heard = Recorder()
        self.successResultOf(self.backend.start(self.heard))
        self.addCleanup(self.backend.stop)
        self.direct = self.backend.direct
        self.dms = self.data / "dms"

    def send(self, sender: str, recipient: str, text: str, when: str = STAMP) -> Any:
        return self.successResultOf(self.direct.send(sender, recipient, when, text))

    def shown(self) -> list[tuple[Any, ...]]:
        found = list(self.heard.events.pending)
        self.heard.events.pending.clear()
        return found

    def test_layout(self) -> None:
        self.direct.online("Bob")
        self.send("Alice", "Bob", "hi")
        self.direct.offline("Bob")
        self.send("Alice", "Bob", "later")
        first = f"{STAMP} Alice hi\n".encode()
        line = first + f"{stamp(1)} Alice later\n".encode()
        self.assertEqual((self.dms / "alice" / "bob.log").read_bytes(), line)
        self.assertEqual((self.dms / "bob" / "alice.log").read_bytes(), line)
        # The inbox points into bob's copy, where "later" begins.
        self.assertEqual((self.dms / "bob" / "unread").read_text(), f"alice {len(first)}\n")
        unread = self.successResultOf(self.direct.take_unread("Bob"))
        self.assertEqual(unread, Unread([DirectMessage(stamp(1), "Alice", "Bob", "later")], 0))
        self.assertFalse((self.dms / "bob" / "unread").exists())
        self.successResultOf(self.direct.ignore("bob", "Carol", 10))
        self.assertEqual((self.dms / "bob" / "ignored").read_text(), "carol\n")

    def test_the_shared_budget_of_open_files(self) -> None:
        self.assertIs(self.direct._files, self.store._fds)
        fds = len(os.listdir("/proc/self/fd"))
        for name in ["b", "c", "d", "e"]:
            self.send("a", name, "hi")
        self.store.append("general", [Message(STAMP, "a", "room")])
        self.assertEqual(len(self.store._fds), 4)
        self.assertEqual(len(os.listdir("/proc/self/fd")) - fds, 4)
        self.assertIn("general.log", open_files(self.data))
        self.send("a", "b", "again")
        self.assertEqual(
            (self.dms / "b" / "a.log").read_bytes().splitlines()[-1], f"{stamp(1)} a again".encode()
        )

    def test_both_copies_stay_open_with_a_budget_of_one(self) -> None:
        self.store._fds.max_open = 1
        self.send("a", "b", "one")
        self.send("b", "a", "two")
        # Never more than the budget, but for the copy being written while
        # the other is being opened.
        self.assertLessEqual(len(self.store._fds), 2)
        self.send("c", "d", "three")
        self.assertLessEqual(len(self.store._fds), 2)
        for path in [self.dms / "a" / "b.log", self.dms / "b" / "a.log"]:
            self.assertEqual(
                path.read_bytes(), f"{STAMP} a one\n{stamp(1)} b two\n".encode(), str(path)
            )

    def test_a_failed_second_write_takes_back_the_first(self) -> None:
        self.direct.online("b")
        self.send("a", "b", "kept")
        self.shown()
        before = (self.dms / "a" / "b.log").read_bytes()
        real = os.write
        calls = []

        def second_fails(fd: int, data: Any) -> int:
            calls.append(fd)
            if len(calls) == 2:
                return real(fd, bytes(data)[:5])
            return real(fd, data)

        with mock.patch("os.write", second_fails), capturedLogs():
            self.failureResultOf(self.direct.send("a", "b", STAMP, "lost"), StoreUnavailable)
        self.assertEqual(len(calls), 2)
        self.assertEqual((self.dms / "a" / "b.log").read_bytes(), before)
        self.assertEqual((self.dms / "b" / "a.log").read_bytes(), before)
        self.assertEqual(self.shown(), [])
        # And the next message follows the last one stored.
        self.send("a", "b", "next")
        self.assertEqual(self.shown()[0][1].timestamp, stamp(1))

    def test_a_failed_inbox_pointer_takes_back_both_copies(self) -> None:
        real = os.open

        def no_pointer(path: Any, *args: Any) -> int:
            if str(path).endswith("unread"):
                raise PermissionError(13, "Permission denied")
            return real(path, *args)

        with mock.patch("os.open", no_pointer), capturedLogs():
            self.failureResultOf(self.direct.send("a", "b", STAMP, "lost"), StoreUnavailable)
        self.assertEqual((self.dms / "a" / "b.log").read_bytes(), b"")
        self.assertEqual((self.dms / "b" / "a.log").read_bytes(), b"")
        self.assertEqual(self.shown(), [])
        self.assertEqual(self.successResultOf(self.direct.take_unread("b")), Unread([], 0))

    def test_a_torn_line_is_cut_off_when_the_copy_is_opened(self) -> None:
        home = self.dms / "a"
        home.mkdir(parents=True)
        (home / "b.log").write_bytes(f"{stamp(5)} a whole\n{stamp(6)} a to".encode())
        self.direct.online("b")
        with capturedLogs() as logged:
            self.send("a", "b", "next")
        self.assertTrue(any("torn" in str(e.get("log_format")) for e in logged))
        self.assertEqual(
            (home / "b.log").read_bytes(), f"{stamp(5)} a whole\n{stamp(6)} a next\n".encode()
        )

    def test_sync_fsyncs_what_was_written_in_a_thread(self) -> None:
        self.send("a", "b", "one")
        with fsyncs() as synced:
            self.successResultOf(self.direct.sync())
        self.assertEqual(sorted(synced[:2]), ["a.log", "b.log"])
        # The directories created, and the inbox pointer, too.
        self.assertEqual(sorted(synced[2:]), ["a", "b", "dms", "unread"])
        with fsyncs() as synced:
            self.successResultOf(self.direct.sync())
        self.assertEqual(synced, [])

    def test_unread_survives_a_restart_only_up_to_what_came_before(self) -> None:
        self.send("a", "b", "while away")
        self.backend.stop()
        store = FileChatStore(self.data, run=run_inline)
        again = LocalBackend(store, Clock(), sync_interval=0)
        self.successResultOf(again.start(Recorder()))
        self.addCleanup(again.stop)
        again.direct.online("b")
        self.successResultOf(again.direct.send("a", "b", STAMP, "live"))
        unread = self.successResultOf(again.direct.take_unread("b"))
        self.assertEqual([m.text for m in unread.messages], ["while away"])

    def test_ignoring_that_cannot_be_saved_changes_nothing(self) -> None:
        with mock.patch("os.fsync", side_effect=OSError(5, "I/O error")), capturedLogs():
            self.failureResultOf(self.direct.ignore("b", "a", 10), StoreUnavailable)
        self.assertEqual(self.successResultOf(self.direct.ignored("b")), [])
        self.successResultOf(self.direct.ignore("b", "a", 10))
        with mock.patch("os.fsync", side_effect=OSError(5, "I/O error")), capturedLogs():
            self.failureResultOf(self.direct.unignore("b", "a"), StoreUnavailable)
        self.assertEqual(self.successResultOf(self.direct.ignored("b")), ["a"])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)

    def test_standalone_with_its_own_files(self) -> None:
        direct = DirectFiles(self.data / "other", run=run_inline, files=OpenFiles(2))
        self.successResultOf(direct.start(Recorder()))
        self.successResultOf(direct.send("a", "b", STAMP, "hi"))
        self.assertEqual(
            self.successResultOf(direct.history("b", "a", None, 5)), [Message(STAMP, "a", "hi")]
        )
        direct.close()


class PageTests(SynchronousTestCase):
    """
    L{read_page}: a binary search over byte offsets, then a read of about
    the page's size.
    """

    def write(self, lines: list[bytes]) -> Path:
        path = Path(self.mktemp())
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        return path

    def test_a_long_file_is_paged_without_reading_it_whole(self) -> None:
        # Lines of varied length, 20,000 of them (over a megabyte).
        lines = [f"{stamp(i)} u{i % 7} {'x' * (i % 97)}".encode() for i in range(20_000)]
        path = self.write(lines)
        real = os.pread
        read: list[int] = []

        def counting(fd: int, n: int, pos: int) -> bytes:
            read.append(n)
            return real(fd, n, pos)

        with mock.patch("os.pread", counting):
            page = read_page(path, None, stamp(12_345), 10)
        self.assertEqual([m.timestamp for m in page], [stamp(i) for i in range(12_335, 12_345)])
        self.assertEqual(page[0], Message(stamp(12_335), f"u{12_335 % 7}", "x" * (12_335 % 97)))
        self.assertLess(sum(read), 200_000)
        for before in [stamp(0), stamp(1), stamp(5), stamp(19_999), stamp(20_000), None]:
            want = [m for m in map(bytes.decode, lines) if before is None or m[:24] < before]
            got = read_page(path, None, before, 10)
            self.assertEqual([f"{m.timestamp} {m.sender} {m.text}" for m in got], want[-10:])

    def test_stamps_out_of_order_do_not_break_it(self) -> None:
        stamps = [stamp(i) for i in [5, 1, 9, 3, 3, 12, 0, 7]] * 500
        path = self.write([f"{s} u t{i}".encode() for i, s in enumerate(stamps)])
        for before in [stamp(0), stamp(4), stamp(8), stamp(20), None]:
            page = read_page(path, None, before, 10)
            self.assertLessEqual(len(page), 10)
            self.assertTrue(all(before is None or m.timestamp < before for m in page))

    def test_damaged_lines_are_skipped_and_a_missing_file_is_empty(self) -> None:
        path = self.write([f"{stamp(0)} a one".encode(), b"garbage", f"{stamp(2)} a two".encode()])
        self.assertEqual([m.text for m in read_page(path, None, None, 10)], ["one", "two"])
        self.assertEqual(read_page(path.with_name("nothing"), None, None, 10), [])
