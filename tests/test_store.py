"""
The embedded file store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chat.interfaces import IChatStore, NameTaken, StoreUnavailable
from chat.store import FileChatStore, read_tail_lines
from tests.helpers import run_inline


class TailTests(SynchronousTestCase):
    def tail(self, data: bytes, count: int) -> list[bytes]:
        path = Path(self.mktemp())
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        return read_tail_lines(fd, len(data), count)

    def test_last_lines_oldest_first(self) -> None:
        data = b"".join(b"line %d\n" % i for i in range(100))
        self.assertEqual(self.tail(data, 3), [b"line 97", b"line 98", b"line 99"])
        self.assertEqual(len(self.tail(data, 1000)), 100)
        self.assertEqual(self.tail(data, 0), [])
        self.assertEqual(self.tail(b"", 5), [])

    def test_lines_longer_than_a_block(self) -> None:
        long = [bytes([65 + i]) * 40000 for i in range(4)]
        data = b"\n".join(long) + b"\n"
        self.assertEqual(self.tail(data, 2), long[2:])
        self.assertEqual(self.tail(data, 4), long)

    def test_reads_only_the_tail_of_a_large_file(self) -> None:
        data = b"x" * 99 + b"\n"
        data *= 100_000  # 10 MB
        read = []
        real = os.pread

        def counting(fd: int, n: int, offset: int) -> bytes:
            read.append(n)
            return real(fd, n, offset)

        with mock.patch("os.pread", counting):
            self.assertEqual(len(self.tail(data, 50)), 50)
        self.assertLess(sum(read), 64 * 1024)


class StoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.data = Path(self.mktemp())
        self.store = FileChatStore(self.data, run=run_inline)
        self.addCleanup(self.store.close)

    def test_provides(self) -> None:
        self.assertTrue(verifyObject(IChatStore, self.store))

    def test_fresh_directory_has_general(self) -> None:
        self.assertEqual(self.store.load(50), {"general": []})
        self.assertTrue((self.data / "rooms" / "general.log").is_file())

    def test_existing_rooms_keep_their_spelling_and_history(self) -> None:
        rooms = self.data / "rooms"
        rooms.mkdir(parents=True)
        (rooms / "Zoo.log").write_bytes(
            b"2026-11-25T04:50:05.123Z alice hello  there\n"
            b"damaged\n"
            b"2026-11-25T04:50:06.000Z bob :)\n"
        )
        with capturedLogs() as events:
            loaded = self.store.load(50)
        self.assertEqual(
            loaded,
            {
                "Zoo": [
                    ("2026-11-25T04:50:05.123Z", "alice", "hello  there"),
                    ("2026-11-25T04:50:06.000Z", "bob", ":)"),
                ]
            },
        )
        self.assertEqual(len([e for e in events if "damaged" in e["log_format"]]), 1)

    def test_torn_line_is_cut_off(self) -> None:
        rooms = self.data / "rooms"
        rooms.mkdir(parents=True)
        (rooms / "general.log").write_bytes(b"2026-11-25T04:50:05.123Z a whole\n2026-11-2")
        self.assertEqual(len(self.store.load(50)["general"]), 1)
        self.store.append("general", [("2026-11-25T04:50:07.000Z", "b", "next")])
        self.assertEqual(
            (rooms / "general.log").read_bytes(),
            b"2026-11-25T04:50:05.123Z a whole\n2026-11-25T04:50:07.000Z b next\n",
        )

    def test_create_room(self) -> None:
        self.store.load(50)
        self.assertIsNone(self.successResultOf(self.store.create_room("Lounge")))
        self.store.append("Lounge", [("2026-11-25T04:50:05.123Z", "a", "hi")])
        self.assertEqual(
            (self.data / "rooms" / "Lounge.log").read_bytes(), b"2026-11-25T04:50:05.123Z a hi\n"
        )
        self.failureResultOf(self.store.create_room("Lounge"), NameTaken)

    def test_unwritable_directory(self) -> None:
        self.store.load(50)
        # chmod does not stop root, so point the store at a path that cannot
        # be a directory.
        self.store.rooms_dir = self.data / "rooms" / "general.log"
        self.failureResultOf(self.store.create_room("Lounge"), StoreUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(NotADirectoryError)), 1)

    def test_full_disk_leaves_the_history_whole(self) -> None:
        self.store.load(50)
        self.store.append("general", [("2026-11-25T04:50:05.123Z", "a", "kept")])
        path = self.data / "rooms" / "general.log"
        before = path.read_bytes()
        good = self.store._fds["general"]
        self.store._fds["general"] = os.open("/dev/full", os.O_WRONLY)
        try:
            with capturedLogs():
                self.assertRaises(
                    StoreUnavailable,
                    self.store.append,
                    "general",
                    [("2026-11-25T04:50:06.000Z", "a", "lost")],
                )
        finally:
            os.close(self.store._fds["general"])
            self.store._fds["general"] = good
        # /dev/full cannot be truncated either: that is logged as a failure.
        self.flushLoggedErrors(OSError)
        self.assertEqual(path.read_bytes(), before)

    def test_short_write_is_undone(self) -> None:
        self.store.load(50)
        path = self.data / "rooms" / "general.log"
        real = os.write

        def short(fd: int, data: Any) -> int:
            return real(fd, bytes(data)[:5])

        with mock.patch("os.write", short):
            self.assertRaises(
                StoreUnavailable,
                self.store.append,
                "general",
                [("2026-11-25T04:50:06.000Z", "a", "x"), ("2026-11-25T04:50:06.001Z", "a", "y")],
            )
        self.assertEqual(path.read_bytes(), b"")
        self.store.append("general", [("2026-11-25T04:50:07.000Z", "a", "y")])
        self.assertEqual(path.read_bytes(), b"2026-11-25T04:50:07.000Z a y\n")

    def test_sync(self) -> None:
        self.store.load(50)
        self.store.append("general", [("2026-11-25T04:50:07.000Z", "a", "y")])
        synced = []
        with mock.patch("os.fsync", synced.append):
            self.successResultOf(self.store.sync())
            self.successResultOf(self.store.sync())
        self.assertEqual(synced, [self.store._fds["general"]])
