"""
The embedded file store.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from chat.message import Message
from chat.storage.common import NameTaken, StoreUnavailable
from chat.storage.files.rooms import (
    FileChatStore,
    IChatStore,
    default_open_files,
    read_tail_lines,
)
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
        with fsyncs() as synced:
            self.successResultOf(self.store.sync())
            self.successResultOf(self.store.sync())
        self.assertEqual(synced, ["general.log"])


@contextmanager
def fsyncs() -> Iterator[list[str]]:
    """
    Record the name of each file fsynced, instead of syncing it.
    """
    synced: list[str] = []

    def record(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))

    with mock.patch("os.fsync", record):
        yield synced


def open_files(directory: Path) -> set[str]:
    """
    The files under C{directory} this process has open.
    """
    found = set()
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target.startswith(str(directory.resolve()) + os.sep):
            found.add(os.path.basename(target))
    return found


def message(text: str) -> list[Message]:
    return [Message("2026-11-25T04:50:07.000Z", "a", text)]


class OpenFilesTests(SynchronousTestCase):
    """
    At most C{max_open} room files are open, whatever the number of rooms.
    """

    def setUp(self) -> None:
        self.data = Path(self.mktemp())
        rooms = self.data / "rooms"
        rooms.mkdir(parents=True)
        for i in range(10):
            (rooms / f"r{i}.log").write_bytes(b"2026-11-25T04:50:05.123Z a old %d\n" % i)
        self.store = FileChatStore(self.data, run=run_inline, max_open=3)
        self.addCleanup(self.store.close)

    def test_load_keeps_no_file_open(self) -> None:
        loaded = self.store.load(50)
        self.assertEqual(len(loaded), 10)
        self.assertEqual(loaded["r7"], [("2026-11-25T04:50:05.123Z", "a", "old 7")])
        self.assertEqual(open_files(self.data), set())

    def test_least_recently_written_is_closed_and_reopened(self) -> None:
        self.store.load(50)
        for i in range(4):
            self.store.append(f"r{i}", message(f"new {i}"))
        self.assertEqual(open_files(self.data), {"r1.log", "r2.log", "r3.log"})
        # r1 written again: r2 is now the least recently written.
        self.store.append("r1", message("again"))
        self.store.append("r0", message("back"))
        self.assertEqual(open_files(self.data), {"r0.log", "r1.log", "r3.log"})
        rooms = self.data / "rooms"
        self.assertEqual(
            (rooms / "r0.log").read_bytes().splitlines(),
            [
                b"2026-11-25T04:50:05.123Z a old 0",
                b"2026-11-25T04:50:07.000Z a new 0",
                # The same stamp again: one millisecond later.
                b"2026-11-25T04:50:07.001Z a back",
            ],
        )
        self.assertEqual((rooms / "r1.log").read_bytes().count(b"\n"), 3)

    def test_closed_files_are_still_synced(self) -> None:
        self.store.load(50)
        for i in range(6):
            self.store.append(f"r{i}", message(f"new {i}"))
        with fsyncs() as synced:
            self.successResultOf(self.store.sync())
        self.assertEqual(sorted(synced), [f"r{i}.log" for i in range(6)])
        # The sync thread's own descriptors are closed again.
        self.assertEqual(len(open_files(self.data)), 3)

    def test_closed_files_are_synced_on_close(self) -> None:
        self.store.load(50)
        for i in range(5):
            self.store.append(f"r{i}", message(f"new {i}"))
        with fsyncs() as synced:
            self.store.close()
        self.assertEqual(sorted(synced), [f"r{i}.log" for i in range(5)])
        self.assertEqual(open_files(self.data), set())

    def test_out_of_descriptors_gives_one_back(self) -> None:
        self.store.load(50)
        self.store.append("r0", message("one"))
        real = os.open
        refused = []

        def emfile(path: Any, *args: Any) -> int:
            if not refused:
                refused.append(path)
                raise OSError(errno.EMFILE, "Too many open files")
            return real(path, *args)

        with mock.patch("os.open", emfile):
            self.store.append("r1", message("two"))
        self.assertEqual(open_files(self.data), {"r1.log"})
        self.assertTrue((self.data / "rooms" / "r1.log").read_bytes().endswith(b"two\n"))

    def test_a_file_that_cannot_be_opened_is_unavailable(self) -> None:
        self.store.load(50)
        with mock.patch("os.open", side_effect=OSError(errno.EACCES, "Permission denied")):
            with capturedLogs():
                self.assertRaises(StoreUnavailable, self.store.append, "r0", message("x"))

    def test_default_follows_the_descriptor_limit(self) -> None:
        with mock.patch("resource.getrlimit", return_value=(64, 4096)):
            self.assertEqual(default_open_files(), 16)
        with mock.patch("resource.getrlimit", return_value=(1_048_576, 1_048_576)):
            self.assertEqual(default_open_files(), 256)
        with mock.patch("resource.getrlimit", return_value=(resource.RLIM_INFINITY,) * 2):
            self.assertEqual(default_open_files(), 256)
