"""
Moderation on files (L{chat.storage.files.moderation}): what the contract
suite cannot see, the layout and formats on disk, tombstones, damaged
files, failures half-way, and deletes racing appends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from chat.message import Message, format_timestamp, parse_timestamp
from chat.storage.common import StoreUnavailable
from chat.storage.files.logs import BLOCK, is_tombstone, read_tail, tombstone
from chat.storage.files.moderation import ModerationFiles
from chat.storage.files.rooms import FileChatStore, LocalBackend
from chat.storage.moderation import Act, Ban, RoomRules, Rules, Topic
from tests.helpers import HeldRunner, run_inline
from tests.storage.backends import STAMP, Recorder
from tests.test_store import open_files

ACTED = "2026-12-02T11:00:00.000Z"


def stamp(ms: int, base: str = STAMP) -> str:
    return format_timestamp(parse_timestamp(base) + ms / 1000)


def act(
    n: int,
    actor: str,
    action: str,
    room: str | None,
    target: str | None = None,
    reason: str | None = None,
) -> Act:
    return Act(stamp(n, ACTED), actor, action, room, target, reason)


class Process:
    """
    One process on the data directory: its store, backend and ear.
    """

    def __init__(
        self, case: SynchronousTestCase, data: Path, run: Any = run_inline, history: int = 10
    ) -> None:
        self.store = FileChatStore(data, run=run, max_open=4)
        self.backend = LocalBackend(self.store, Clock(), sync_interval=0)
        self.heard = Recorder(history)
        case.successResultOf(self.backend.start(self.heard))
        case.addCleanup(self.backend.stop)
        self.moderation: ModerationFiles = self.backend.moderation

    def acts(self) -> list[Act]:
        """
        The acts heard since the last call.
        """
        found = [event[1] for event in self.heard.events.pending if event[0] == "act"]
        self.heard.events.pending.clear()
        return found


class ModerationFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.data = Path(self.mktemp())
        self.process = Process(self, self.data)
        self.store = self.process.store
        self.backend = self.process.backend
        self.moderation = self.process.moderation
        self.room_file = self.data / "rooms" / "Lounge.log"
        self.successResultOf(self.backend.create_room("Lounge"))

    def restart(self, history: int = 10) -> Process:
        return Process(self, self.data, history=history)

    def do(self, *acts: Act) -> None:
        for one in acts:
            self.successResultOf(self.moderation.act(one))
        self.assertEqual(self.process.acts(), list(acts))

    def say(self, *said: tuple[str, str], room: str = "Lounge") -> list[str]:
        stamps = []
        for sender, text in said:
            self.successResultOf(self.backend.publish(room, [Message(STAMP, sender, text)]))
            stamps.append(self.process.heard.messages[-1].timestamp)
        return stamps

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.data / "audit.log").read_bytes().splitlines()]

    # Layout and formats

    def test_rules_file_layout(self) -> None:
        self.do(
            act(0, "Alice", "own", "Lounge", "Alice"),
            act(1, "Alice", "op", "Lounge", "Bob"),
            act(2, "Bob", "ban", "Lounge", "Mallory", "spam"),
            act(3, "Bob", "ban", "Lounge", "eve"),
            act(4, "Bob", "mute", "Lounge", "Dave"),
            act(5, "Bob", "topic", "Lounge", None, "ünïcode ☃"),
        )
        self.assertEqual(sorted(os.listdir(self.data / "rules")), ["lounge.json"])
        self.assertEqual(
            json.loads((self.data / "rules" / "lounge.json").read_bytes()),
            {
                "room": "Lounge",
                "owner": "Alice",
                "operators": ["Bob"],
                "bans": [
                    {"user": "Mallory", "ts": stamp(2, ACTED), "by": "Bob", "reason": "spam"},
                    {"user": "eve", "ts": stamp(3, ACTED), "by": "Bob", "reason": None},
                ],
                "mutes": ["Dave"],
                "topic": {"text": "ünïcode ☃", "ts": stamp(5, ACTED), "by": "Bob"},
            },
        )
        self.assertIn("ünïcode ☃".encode(), (self.data / "rules" / "lounge.json").read_bytes())
        # No temporary file is left behind.
        self.assertEqual(sorted(os.listdir(self.data / "rules")), ["lounge.json"])

    def test_rules_file_goes_with_the_last_rule(self) -> None:
        self.do(act(0, "root", "op", "Lounge", "bob"))
        self.assertTrue((self.data / "rules" / "lounge.json").exists())
        self.do(act(1, "root", "deop", "Lounge", "bob"))
        self.assertEqual(os.listdir(self.data / "rules"), [])

    def test_locks_file_layout(self) -> None:
        self.do(
            act(0, "root", "lock", None, "Mallory", "spam"),
            act(1, "root", "lock", None, "eve"),
            act(2, "root", "lock", None, "carol"),
            act(3, "root", "unlock", None, "CAROL"),
        )
        self.assertEqual(
            json.loads((self.data / "locks.json").read_bytes()), {"mallory": "spam", "eve": ""}
        )
        self.do(act(4, "root", "unlock", None, "mallory"), act(5, "root", "unlock", None, "eve"))
        self.assertEqual(json.loads((self.data / "locks.json").read_bytes()), {})

    def test_audit_log_layout(self) -> None:
        self.do(
            act(0, "Alice", "own", "Lounge", "Alice"),
            act(1, "Alice", "kick", "Lounge", "mallory", 'say "hi"\nand go'),
            act(2, "root", "wall", None, None, "ünïcode ☃"),
        )
        raw = (self.data / "audit.log").read_bytes()
        self.assertEqual(raw.count(b"\n"), 2)
        self.assertIn("ünïcode ☃".encode(), raw)
        self.assertEqual(
            self.audit_lines(),
            [
                {
                    "ts": stamp(1, ACTED),
                    "actor": "Alice",
                    "action": "kick",
                    "room": "Lounge",
                    "target": "mallory",
                    "reason": 'say "hi"\nand go',
                },
                {
                    "ts": stamp(2, ACTED),
                    "actor": "root",
                    "action": "wall",
                    "room": None,
                    "target": None,
                    "reason": "ünïcode ☃",
                },
            ],
        )

    def test_each_act_is_durable_before_it_is_heard(self) -> None:
        """
        The audit entry and the rules are fsynced, in the runner's
        thread, before the act is heard.
        """
        runner = HeldRunner()
        self.moderation._run = runner
        d = self.moderation.act(act(0, "root", "op", "Lounge", "bob"))
        self.assertEqual(self.process.acts(), [])
        self.assertNoResult(d)
        with mock.patch("os.fsync", wraps=os.fsync) as fsync:
            while runner.jobs:
                self.assertEqual(self.process.acts(), [])
                runner.release()
        self.successResultOf(d)
        # The audit log and its directory (new), the rules file and its
        # directory.
        self.assertEqual(fsync.call_count, 4)
        self.assertEqual(self.process.acts(), [act(0, "root", "op", "Lounge", "bob")])

    def test_acts_are_done_one_at_a_time(self) -> None:
        runner = HeldRunner()
        self.moderation._run = runner
        first = self.moderation.act(act(0, "root", "op", "Lounge", "bob"))
        second = self.moderation.act(act(1, "root", "deop", "Lounge", "bob"))
        # Only the first act's audit entry is being written.
        self.assertEqual(len(runner.jobs), 1)
        while runner.jobs:
            runner.release()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual([a.action for a in self.process.acts()], ["op", "deop"])
        self.assertFalse((self.data / "rules" / "lounge.json").exists())
        self.assertEqual([e["action"] for e in self.audit_lines()], ["op", "deop"])

    def test_rules_loaded_are_the_servers_own_copy(self) -> None:
        self.do(act(0, "root", "op", "Lounge", "bob"))
        again = self.restart()
        assert again.heard.rules is not None
        # The server applies acts to its copy; the store keeps its own.
        again.heard.rules.apply(act(1, "root", "op", "Lounge", "carol"))
        self.successResultOf(again.moderation.act(act(2, "root", "mute", "Lounge", "dave")))
        self.assertEqual(
            json.loads((self.data / "rules" / "lounge.json").read_bytes())["operators"], ["bob"]
        )

    # Damaged files

    def test_damaged_rules_files_are_skipped_and_said(self) -> None:
        self.successResultOf(self.backend.create_room("Den"))
        self.successResultOf(self.backend.create_room("Cellar"))
        self.do(
            act(0, "root", "op", "Lounge", "bob"),
            act(1, "root", "op", "Den", "bob"),
            act(2, "root", "op", "Cellar", "bob"),
        )
        rules = self.data / "rules"
        whole = (rules / "den.json").read_bytes()
        # Torn, as a crash of a writer that did not rename could not leave,
        # but a disk could; and valid JSON of the wrong shape.
        (rules / "den.json").write_bytes(whole[: len(whole) // 2])
        (rules / "cellar.json").write_bytes(b'["not", "rules"]')
        # A temporary file left by a crash, and rules of no room.
        (rules / "lounge.json.tmp").write_bytes(b"{")
        (rules / "gone.json").write_bytes(whole)
        (self.data / "locks.json").write_bytes(b'{"mallory": ')
        with capturedLogs() as logged:
            again = self.restart()
        self.assertEqual(
            again.heard.rules, Rules(rooms={"lounge": RoomRules(operators={"bob": "bob"})})
        )
        warnings = [e["log_format"] for e in logged if "damaged" in e["log_format"]]
        self.assertEqual(len(warnings), 3)
        # The damaged rules are replaced whole by the next act.
        self.successResultOf(again.moderation.act(act(3, "root", "op", "Den", "carol")))
        self.assertEqual(json.loads((rules / "den.json").read_bytes())["operators"], ["carol"])

    def test_torn_audit_line_is_dropped_and_damaged_lines_skipped(self) -> None:
        self.do(act(0, "root", "wall", None, None, "one"))
        with (self.data / "audit.log").open("ab") as f:
            f.write(b'not json\n{"ts": "x"}\n')
        self.do(act(1, "root", "wall", None, None, "two"))
        with (self.data / "audit.log").open("ab") as f:
            f.write(b'{"ts": "2026-12-02T11:00:00.002Z", "act')
        with capturedLogs() as logged:
            again = self.restart()
            entries = self.successResultOf(again.moderation.audit(10))
        self.assertEqual([e.reason for e in entries], ["one", "two"])
        self.assertTrue(any("torn" in e["log_format"] for e in logged))
        self.assertEqual(len([e for e in logged if "damaged line" in e["log_format"]]), 2)
        self.successResultOf(again.moderation.act(act(3, "root", "wall", None, None, "three")))
        entries = self.successResultOf(again.moderation.audit(2))
        self.assertEqual([e.reason for e in entries], ["two", "three"])

    def test_audit_reads_past_damaged_lines_for_its_count(self) -> None:
        self.do(*(act(i, "root", "wall", None, None, f"w{i}") for i in range(3)))
        with (self.data / "audit.log").open("ab") as f:
            f.write(b"garbage\n" * 5)
        self.do(act(3, "root", "wall", None, None, "w3"))
        with capturedLogs():
            entries = self.successResultOf(self.moderation.audit(3))
        self.assertEqual([e.reason for e in entries], ["w1", "w2", "w3"])

    # Deleting

    def lines(self) -> list[bytes]:
        return self.room_file.read_bytes().split(b"\n")[:-1]

    def check_erased(self, count: int, deleted: int) -> None:
        texts = [f"message number {i} " + "x" * i for i in range(count)]
        stamps = self.say(*(("mallory", text) for text in texts))
        before = self.lines()
        size = self.room_file.stat().st_size
        self.do(act(0, "bob", "delete", "Lounge", "mallory", stamps[deleted]))
        after = self.lines()
        self.assertEqual(self.room_file.stat().st_size, size)
        self.assertEqual(after[:deleted], before[:deleted])
        self.assertEqual(after[deleted + 1 :], before[deleted + 1 :])
        grave = after[deleted]
        self.assertEqual(len(grave), len(before[deleted]))
        self.assertEqual(grave, stamps[deleted].encode() + b" *" + b" " * (len(grave) - 26))
        self.assertTrue(is_tombstone(grave))
        self.assertNotIn(texts[deleted].encode(), self.room_file.read_bytes())
        self.assertIsNone(self.successResultOf(self.moderation.find("Lounge", stamps[deleted])))
        kept = [t for i, t in enumerate(texts) if i != deleted]
        history = self.successResultOf(self.backend.direct.room_history("Lounge", None, 50))
        self.assertEqual([m.text for m in history], kept[-50:])
        with capturedLogs() as logged:
            again = self.restart()
        self.assertEqual(again.heard.loaded["Lounge"][0], kept[-10:])
        # Tombstones are no damaged lines.
        self.assertEqual(list(logged), [])

    def test_tombstone_of_the_first_line(self) -> None:
        self.check_erased(3, 0)

    def test_tombstone_of_the_last_line(self) -> None:
        self.check_erased(3, 2)

    def test_tombstone_of_a_middle_line(self) -> None:
        self.check_erased(5, 2)

    def test_tombstone_in_a_long_file(self) -> None:
        """
        Found by a binary search through many blocks.
        """
        self.check_erased(600, 411)
        self.assertGreater(self.room_file.stat().st_size, 8 * BLOCK)

    def test_tombstone_of_a_line_longer_than_a_block(self) -> None:
        long = "y" * (BLOCK * 2 + 100)
        stamps = self.say(("a", "one"), ("mallory", long), ("a", "three"))
        found = self.successResultOf(self.moderation.find("Lounge", stamps[1]))
        self.assertEqual(found, Message(stamps[1], "mallory", long))
        self.do(act(0, "bob", "delete", "Lounge", "mallory", stamps[1]))
        self.assertNotIn(b"yyy", self.room_file.read_bytes())
        self.assertEqual(self.restart().heard.loaded["Lounge"][0], ["one", "three"])

    def test_a_room_whose_messages_are_all_deleted(self) -> None:
        stamps = self.say(*(("a", f"m{i}") for i in range(5)))
        for i, when in enumerate(stamps):
            self.do(act(i, "bob", "delete", "Lounge", "a", when))
        again = self.restart()
        self.assertEqual(again.heard.loaded["Lounge"], ([], []))
        self.successResultOf(again.backend.publish("Lounge", [Message(STAMP, "c", "new")]))
        self.assertEqual(again.heard.messages[-1].timestamp, stamp(5))

    def test_tombstone_of_an_empty_text(self) -> None:
        [when] = self.say(("a", ""))
        self.assertEqual(self.lines(), [f"{when} a ".encode()])
        self.do(act(0, "bob", "delete", "Lounge", "a", when))
        self.assertEqual(self.lines(), [f"{when} * ".encode()])
        self.assertEqual(self.restart().heard.loaded["Lounge"], ([], []))

    def test_tombstone_function(self) -> None:
        line = f"{STAMP} bob hello there".encode()
        self.assertEqual(tombstone(line), f"{STAMP} *".encode() + b" " * 14)
        self.assertEqual(len(tombstone(line)), len(line))
        self.assertTrue(is_tombstone(tombstone(line)))
        self.assertFalse(is_tombstone(line))
        self.assertFalse(is_tombstone(f"{STAMP} *bob x".encode()[:0]))

    def test_a_deleted_last_message_keeps_its_stamp_after_a_restart(self) -> None:
        stamps = self.say(("a", "one"), ("b", "two"))
        self.do(act(0, "bob", "delete", "Lounge", "b", stamps[1]))
        again = self.restart(history=0)
        self.successResultOf(again.backend.publish("Lounge", [Message(STAMP, "c", "three")]))
        self.assertEqual(again.heard.messages[-1].timestamp, stamp(2))

    def test_paging_skips_tombstones_and_fills_its_pages(self) -> None:
        stamps = self.say(*(("a", f"m{i}") for i in range(30)))
        for i in range(10, 20):
            self.do(act(i, "bob", "delete", "Lounge", "a", stamps[i]))
        page = self.successResultOf(self.backend.direct.room_history("Lounge", stamps[25], 10))
        self.assertEqual(
            [m.text for m in page], [f"m{i}" for i in [5, 6, 7, 8, 9, 20, 21, 22, 23, 24]]
        )
        page = self.successResultOf(self.backend.direct.room_history("Lounge", None, 12))
        self.assertEqual([m.text for m in page], [f"m{i}" for i in [8, 9, *range(20, 30)]])

    def test_read_tail_parses_each_line_once(self) -> None:
        self.say(*(("a", f"m{i}") for i in range(40)))
        seen: list[bytes] = []

        def parse(lines: list[bytes]) -> list[bytes]:
            seen.extend(lines)
            return [line for line in lines if not line.endswith((b"5", b"7", b"9"))]

        fd = os.open(self.room_file, os.O_RDONLY)
        try:
            found = read_tail(fd, self.room_file.stat().st_size, 10, parse)
        finally:
            os.close(fd)
        self.assertEqual(len(found), 10)
        self.assertEqual(len(seen), len(set(seen)))
        self.assertTrue(found[-1].endswith(b"m38"))

    def test_repeated_stamps_delete_one_line_at_a_time(self) -> None:
        """
        Files older than unique stamps may repeat one: each delete takes
        the first line of it still standing.
        """
        line = f"{STAMP} a one\n{STAMP} b two\n{stamp(1)} c three\n"
        self.room_file.write_text(line)
        again = self.restart()
        self.successResultOf(again.moderation.act(act(0, "r", "delete", "Lounge", "a", STAMP)))
        found = self.successResultOf(again.moderation.find("Lounge", STAMP))
        self.assertEqual(found, Message(STAMP, "b", "two"))
        self.successResultOf(again.moderation.act(act(1, "r", "delete", "Lounge", "b", STAMP)))
        self.assertIsNone(self.successResultOf(again.moderation.find("Lounge", STAMP)))
        self.assertEqual(self.restart().heard.loaded["Lounge"][0], ["three"])

    def test_a_delete_racing_an_append(self) -> None:
        """
        Messages appended while the tombstone is being written (in a
        thread) are kept whole, after it.
        """
        stamps = self.say(("a", "one"), ("mallory", "spam spam"), ("a", "three"))
        runner = HeldRunner()
        self.moderation._run = runner
        self.store._run = runner
        d = self.moderation.act(act(0, "bob", "delete", "Lounge", "mallory", stamps[1]))
        runner.release()  # The audit entry; the erasure is now held.
        self.assertEqual(len(runner.jobs), 1)
        more = self.say(("b", "four"), ("c", "five"))
        runner.release()
        self.assertEqual(runner.jobs, [])
        self.successResultOf(d)
        self.assertEqual(
            self.room_file.read_text(),
            f"{stamps[0]} a one\n{stamps[1]} *{' ' * 16}\n{stamps[2]} a three\n"
            f"{more[0]} b four\n{more[1]} c five\n",
        )
        self.store._run = run_inline
        history = self.successResultOf(self.backend.direct.room_history("Lounge", None, 50))
        self.assertEqual([m.text for m in history], ["one", "three", "four", "five"])

    def test_delete_in_a_room_whose_file_is_closed(self) -> None:
        """
        The erasure opens the file itself: the open-file budget's
        descriptors may be closed (or reopened) by the reactor meanwhile.
        """
        stamps = self.say(("mallory", "spam"), ("a", "ok"))
        for i in range(5):
            self.successResultOf(self.backend.create_room(f"r{i}"))
            self.say(("a", "x"), room=f"r{i}")
        self.assertNotIn("Lounge", self.store.files)
        self.do(act(0, "bob", "delete", "Lounge", "mallory", stamps[0]))
        self.assertNotIn(b"spam", self.room_file.read_bytes())

    def test_failed_erasure_takes_back_its_audit_entry(self) -> None:
        stamps = self.say(("mallory", "spam"))
        self.do(act(0, "root", "wall", None, None, "before"))
        size = (self.data / "audit.log").stat().st_size
        with mock.patch("os.pwrite", side_effect=OSError(28, "No space left")):
            with capturedLogs():
                self.failureResultOf(
                    self.moderation.act(act(1, "bob", "delete", "Lounge", "mallory", stamps[0])),
                    StoreUnavailable,
                )
        self.flushLoggedErrors(OSError)
        self.assertEqual(self.process.acts(), [])
        self.assertEqual((self.data / "audit.log").stat().st_size, size)
        self.assertIn(b"spam", self.room_file.read_bytes())
        entries = self.successResultOf(self.moderation.audit(5))
        self.assertEqual([e.action for e in entries], ["wall"])

    def test_failed_rules_write_takes_back_its_audit_entry(self) -> None:
        self.do(act(0, "root", "op", "Lounge", "bob"))
        size = (self.data / "audit.log").stat().st_size
        with mock.patch("os.replace", side_effect=OSError(28, "No space left")):
            with capturedLogs():
                self.failureResultOf(
                    self.moderation.act(act(1, "root", "op", "Lounge", "carol")),
                    StoreUnavailable,
                )
        self.flushLoggedErrors(OSError)
        self.assertEqual(self.process.acts(), [])
        self.assertEqual((self.data / "audit.log").stat().st_size, size)
        self.assertEqual(
            self.restart().heard.rules,
            Rules(rooms={"lounge": RoomRules(operators={"bob": "bob"})}),
        )
        # The store's own rules did not change either.
        self.do(act(2, "root", "mute", "Lounge", "dave"))
        self.assertEqual(
            json.loads((self.data / "rules" / "lounge.json").read_bytes())["operators"], ["bob"]
        )

    # Dropping

    def test_drop_removes_file_rules_and_descriptor(self) -> None:
        self.say(("a", "hello"))
        self.do(act(0, "root", "ban", "Lounge", "mallory", "spam"))
        self.assertIn("Lounge.log", open_files(self.data))
        self.do(act(1, "root", "drop", "Lounge", None, "closed"))
        self.assertFalse(self.room_file.exists())
        self.assertFalse((self.data / "rules" / "lounge.json").exists())
        self.assertNotIn("Lounge.log", open_files(self.data))
        self.assertIsNone(self.store.size("Lounge"))
        self.assertNotIn("Lounge", self.store.rooms())
        # Speaking there now is no way to bring it back.
        with capturedLogs():
            self.failureResultOf(
                self.backend.publish("Lounge", [Message(STAMP, "a", "x")]), StoreUnavailable
            )
        self.assertFalse(self.room_file.exists())
        # The periodic sync does not look for it.
        with capturedLogs() as logged:
            self.successResultOf(self.store.sync())
        self.assertEqual(list(logged), [])
        # The name is free.
        self.successResultOf(self.backend.create_room("Lounge"))
        self.say(("b", "new"))
        self.assertEqual(self.room_file.read_bytes(), f"{STAMP} b new\n".encode())

    def test_failed_drop_leaves_everything_as_it_was(self) -> None:
        stamps = self.say(("a", "hello"))
        self.do(act(0, "root", "ban", "Lounge", "mallory", "spam"))
        rules = (self.data / "rules" / "lounge.json").read_bytes()
        size = (self.data / "audit.log").stat().st_size
        with mock.patch("chat.storage.files.rooms._remove", side_effect=OSError(5, "I/O error")):
            with capturedLogs():
                self.failureResultOf(
                    self.moderation.act(act(1, "root", "drop", "Lounge")), StoreUnavailable
                )
        self.flushLoggedErrors(OSError)
        self.assertEqual(self.process.acts(), [])
        self.assertEqual((self.data / "rules" / "lounge.json").read_bytes(), rules)
        self.assertEqual((self.data / "audit.log").stat().st_size, size)
        self.assertTrue(self.room_file.exists())
        # The room serves as before.
        more = self.say(("b", "still here"))
        self.assertEqual(
            self.successResultOf(self.moderation.find("Lounge", stamps[0])),
            Message(stamps[0], "a", "hello"),
        )
        self.assertEqual(more, [stamp(1)])
        again = self.restart()
        self.assertEqual(again.heard.loaded["Lounge"][0], ["hello", "still here"])
        assert again.heard.rules is not None
        self.assertEqual(
            again.heard.rules.room("Lounge"),
            RoomRules(bans={"mallory": Ban("mallory", stamp(0, ACTED), "root", "spam")}),
        )

    def test_rules_of_a_room_that_is_gone_are_ignored(self) -> None:
        """
        A process that died between removing a room's file and its rules
        (which the drop removes first, so this is a disk put back by hand)
        leaves nothing for the next room of that name.
        """
        self.do(act(0, "root", "topic", "Lounge", None, "old"))
        self.room_file.unlink()
        again = self.restart()
        self.assertEqual(again.heard.rules, Rules())
        self.successResultOf(again.backend.create_room("Lounge"))
        self.successResultOf(again.moderation.act(act(1, "root", "op", "Lounge", "bob")))
        self.assertEqual(
            json.loads((self.data / "rules" / "lounge.json").read_bytes())["topic"], None
        )

    def test_topic_keeps_its_author_and_stamp(self) -> None:
        self.do(act(0, "Alice", "topic", "Lounge", None, "hi"))
        rules = self.restart().heard.rules
        assert rules is not None
        self.assertEqual(
            rules.room("lounge"), RoomRules(topic=Topic("hi", stamp(0, ACTED), "Alice"))
        )
