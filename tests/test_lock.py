"""
The data directory's lock, within one process: two open files of one
path conflict under C{flock} just as two processes do.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from chat.lock import LOCK_NAME, DirectoryInUse, lock_directory
from tests.helpers import temp_dir


class LockTests(SynchronousTestCase):
    def test_second_lock_is_refused_with_the_holders_pid(self) -> None:
        data = temp_dir(self) / "data"
        held = lock_directory(data)
        self.addCleanup(held.release)
        with self.assertRaises(DirectoryInUse) as caught:
            lock_directory(data)
        self.assertEqual((caught.exception.directory, caught.exception.pid), (data, os.getpid()))
        self.assertEqual((data / LOCK_NAME).read_text(), f"{os.getpid()}\n")

    def test_released_lock_is_free_whatever_the_file_says(self) -> None:
        data = temp_dir(self)
        # What a server killed with kill -9 leaves: its PID, no lock.
        (data / LOCK_NAME).write_text("999999999\n")
        lock = lock_directory(data)
        self.assertEqual((data / LOCK_NAME).read_text(), f"{os.getpid()}\n")
        lock.release()
        lock_directory(data).release()

    def test_missing_directory_is_created(self) -> None:
        data = temp_dir(self) / "a" / "b"
        lock_directory(data).release()
        self.assertTrue((data / LOCK_NAME).exists())
