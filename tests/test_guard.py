"""
The defences, alone and wired into the protocol.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from chat.guard import (
    AddressPolicy,
    Limits,
    LoginThrottle,
    SendQueue,
    TokenBucket,
    clean_text,
    has_visible,
    parse_networks,
)
from chat.lines import parse_line
from tests.helpers import Chat, HeldRunner, temp_dir


def codes(lines: list[str]) -> list[str]:
    return [parse_line(line).args[0] for line in lines if line.startswith("ERR ")]


class CleanTextTests(SynchronousTestCase):
    def test_printable_text_is_untouched(self) -> None:
        for text in (
            "hello",
            "caf\u00e9 \u2764\ufe0f \u05e9\u05dc\u05d5\u05dd",
            "a\u200db",
            "a\tb",
        ):
            self.assertEqual(clean_text(text), text)

    def test_removed(self) -> None:
        cases = {
            "\x1b[31mred\x1b[0m": "red",
            "\x1b[2J\x1b[H": "",
            "\x1b]0;pwned\x07title": "title",
            "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\": "link",
            "\x1bPdcs\x1b\\after": "after",
            "bell\x07\x07": "bell",
            "nul\x00": "nul",
            "\x9b31mC1": "31mC1",
            "del\x7f": "del",
            "\u202eright-to-left\u202c": "right-to-left",
            "\u2067iso\u2069": "iso",
            "line\u2028sep\u2029": "linesep",
            "\x1b": "",
            "tab\tstays": "tab\tstays",
        }
        for dirty, clean in cases.items():
            self.assertEqual(clean_text(dirty), clean, repr(dirty))

    def test_nothing_unsafe_survives(self) -> None:
        everything = "".join(chr(c) for c in range(0x3000))
        cleaned = clean_text(everything)
        for char in cleaned:
            code = ord(char)
            self.assertFalse(code < 0x20 and char != "\t", hex(code))
            self.assertFalse(0x7F <= code <= 0x9F, hex(code))
            self.assertNotIn(code, (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


#: Characters that show as nothing: those of issue 10, the other spaces,
#: the fillers, and a combining mark with nothing to combine with.
INVISIBLE = [
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u061c",  # ARABIC LETTER MARK
    "\u200b",  # ZERO WIDTH SPACE
    "\u200d",  # ZERO WIDTH JOINER
    "\ufeff",  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
    "\u2060",  # WORD JOINER
    "\u3164",  # HANGUL FILLER
    "\u3000",  # IDEOGRAPHIC SPACE
    "\u00a0",  # NO-BREAK SPACE
    "\u00ad",  # SOFT HYPHEN
    "\u2007",  # FIGURE SPACE
    "\u115f",  # HANGUL CHOSEONG FILLER
    "\u1160",  # HANGUL JUNGSEONG FILLER
    "\uffa0",  # HALFWIDTH HANGUL FILLER
    "\u2800",  # BRAILLE PATTERN BLANK
    "\u180e",  # MONGOLIAN VOWEL SEPARATOR
    "\u0301",  # COMBINING ACUTE ACCENT, alone
    "\ufe0f",  # VARIATION SELECTOR-16, alone
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A
]


class VisibleTests(SynchronousTestCase):
    def test_nothing_visible(self) -> None:
        self.assertFalse(has_visible(""))
        self.assertFalse(has_visible(" \t "))
        for char in INVISIBLE:
            self.assertFalse(has_visible(char), repr(char))
        self.assertFalse(has_visible("".join(INVISIBLE)))

    def test_visible(self) -> None:
        for text in (
            "a",
            " .",
            "\u200f\u05e9\u05dc\u05d5\u05dd",  # Hebrew after a right-to-left mark
            "\u0645\u0631\u062d\u0628\u0627\u061c",  # Arabic
            "\U0001f469\u200d\U0001f4bb",  # an emoji ZWJ sequence
            "\u3164\u4f60",  # a filler, then a letter
            "e\u0301",
            "\ue000",  # private use: fonts draw these
            "\U0001fa75",  # an emoji newer than some Unicode tables
        ):
            self.assertTrue(has_visible(text), repr(text))


class TokenBucketTests(SynchronousTestCase):
    def test_rate_and_burst(self) -> None:
        clock = Clock()
        bucket = TokenBucket(clock, rate=10, burst=20)
        self.assertEqual([bucket.take() for _ in range(21)], [True] * 20 + [False])
        clock.advance(0.1)
        self.assertTrue(bucket.take())
        self.assertFalse(bucket.take())
        clock.advance(100)
        self.assertEqual(sum(bucket.take() for _ in range(30)), 20)

    def test_delay_is_the_wait_for_the_next_token(self) -> None:
        """
        A sender that waits as long as C{delay} says is then let through:
        the client paces its lines this way.
        """
        clock = Clock()
        bucket = TokenBucket(clock, rate=8, burst=2)
        self.assertEqual(bucket.delay(), 0.0)
        self.assertTrue(bucket.take() and bucket.take())
        self.assertEqual(bucket.delay(), 0.125)
        clock.advance(0.1)
        self.assertAlmostEqual(bucket.delay(), 0.025)
        self.assertFalse(bucket.take())
        clock.advance(bucket.delay())
        self.assertTrue(bucket.take())


class SendQueueTests(SynchronousTestCase):
    def test_counts_only_while_behind(self) -> None:
        queue = SendQueue(limit=100)
        self.assertTrue(all(queue.add(1000) for _ in range(10)))
        queue.pauseProducing()
        self.assertTrue(queue.add(60))
        self.assertTrue(queue.add(40))
        self.assertFalse(queue.add(1))
        queue.resumeProducing()
        self.assertTrue(queue.add(1000))

    def test_zero_is_no_limit(self) -> None:
        queue = SendQueue(limit=0)
        queue.pauseProducing()
        self.assertTrue(queue.add(10**9))


class AddressPolicyTests(SynchronousTestCase):
    def test_keys(self) -> None:
        policy = AddressPolicy(parse_networks("127.0.0.0/8,::1/128,10.1.0.0/16"))
        self.assertIsNone(policy.key("127.0.0.1"))
        self.assertIsNone(policy.key("::1"))
        self.assertIsNone(policy.key("::ffff:127.0.0.1"))
        self.assertIsNone(policy.key("10.1.2.3"))
        self.assertIsNone(policy.key("/tmp/chat.sock"))
        self.assertIsNone(policy.key(None))
        self.assertEqual(policy.key("10.2.0.1"), "10.2.0.1")
        self.assertEqual(policy.key("::ffff:10.2.0.1"), "10.2.0.1")
        self.assertEqual(policy.key("2001:db8::1"), policy.key("2001:db8::ffff:1"))
        self.assertEqual(policy.key("2001:db8::1"), "2001:db8::/64")

    def test_counting(self) -> None:
        policy = AddressPolicy(())
        self.assertEqual([policy.opened("a") for _ in range(3)], [1, 2, 3])
        for _ in range(3):
            policy.closed("a")
        self.assertEqual(policy.connections, {})

    def test_bad_networks(self) -> None:
        self.assertRaises(ValueError, parse_networks, "10.0.0.0/33")
        self.assertEqual(parse_networks(""), ())
        self.assertEqual(parse_networks(" ::1/128 ,"), (ipaddress.ip_network("::1/128"),))


class LoginThrottleTests(SynchronousTestCase):
    def test_growing_delay_then_lock(self) -> None:
        clock = Clock()
        throttle = LoginThrottle(clock, free=3, max_delay=30, lock_after=10, lock_for=900)
        delays = [throttle.failed(["user:bob"]) for _ in range(9)]
        self.assertEqual(delays, [0, 0, 0, 1, 2, 4, 8, 16, 30])
        self.assertEqual(throttle.locked(["user:bob"]), 0)
        throttle.failed(["user:bob"])
        self.assertEqual(throttle.locked(["addr:x", "user:bob"]), 900)
        clock.advance(899)
        self.assertEqual(throttle.locked(["user:bob"]), 1)
        clock.advance(1)
        self.assertEqual(throttle.locked(["user:bob"]), 0)

    def test_success_clears_the_account_only(self) -> None:
        throttle = LoginThrottle(Clock(), free=0)
        throttle.failed(["user:bob", "addr:x"])
        throttle.succeeded("user:bob")
        self.assertEqual(throttle.failed(["user:bob"]), 1)
        self.assertEqual(throttle.failed(["addr:x"]), 2)

    def test_failures_are_forgotten(self) -> None:
        clock = Clock()
        throttle = LoginThrottle(clock, free=0, forget_after=60)
        self.assertEqual(throttle.failed(["k"]), 1)
        self.assertEqual(throttle.failed(["k"]), 2)
        clock.advance(61)
        self.assertEqual(throttle.failed(["k"]), 1)

    def test_memory_is_bounded(self) -> None:
        throttle = LoginThrottle(Clock(), max_records=100)
        for i in range(1000):
            throttle.failed([f"user:{i}"])
        self.assertLessEqual(len(throttle._records), 100)


class GuardedProtocolTests(SynchronousTestCase):
    def chat(self, **limits: Any) -> Chat:
        return Chat(temp_dir(self), limits=Limits(**limits))

    def test_login_timeout(self) -> None:
        chat = self.chat(login_timeout=60)
        idle = chat.connect()
        member = chat.connect()
        member.send("/register alice password1")
        chat.clock.advance(59.9)
        self.assertFalse(idle.closed)
        chat.clock.advance(0.1)
        self.assertEqual(idle.take()[-1], "BYE :login timed out")
        self.assertTrue(idle.closed)
        self.assertFalse(member.closed)
        chat.clock.advance(1000)
        self.assertFalse(member.closed)

    def test_connections_per_address(self) -> None:
        chat = self.chat(max_connections_per_ip=2)
        first = chat.connect(peer="192.0.2.1")
        chat.connect(peer="192.0.2.1")
        third = chat.connect(peer="192.0.2.1")
        self.assertEqual(
            third.take()[1:],
            [
                "ERR rate-limited :too many connections from your address",
                "BYE :too many connections",
            ],
        )
        self.assertTrue(third.closed)
        self.assertFalse(chat.connect(peer="192.0.2.2").closed)
        self.assertFalse(all(chat.connect().closed for _ in range(5)))  # loopback: exempt
        first.send("/quit")
        self.assertFalse(chat.connect(peer="192.0.2.1").closed)

    def test_failed_logins_slow_down_then_lock(self) -> None:
        chat = self.chat()
        chat.user("bob")
        client = chat.connect(peer="198.51.100.7")
        client.take()
        answers = []
        for _ in range(4):
            client.send("/login bob wrongpassword")
            answers.append(client.take())
        # The fourth failure is answered a second late, with the line paused.
        self.assertEqual(answers[:3], [["ERR bad-credentials :wrong name or password"]] * 3)
        self.assertEqual(answers[3], [])
        client.send("/login bob password1")
        chat.clock.advance(1)
        lines = client.take()
        self.assertEqual(lines[:2], ["ERR bad-credentials :wrong name or password", "OK login bob"])

    def test_a_locked_account_costs_no_bcrypt(self) -> None:
        chat = self.chat()
        chat.user("bob")
        chat.checker.run = held = HeldRunner()
        chat.factory.throttle.lock_after = 2
        client = chat.connect()
        for _ in range(2):
            client.send("/login bob wrongpassword")
            held.release()
        client.take()
        client.send("/login bob password1")
        self.assertEqual(held.jobs, [])
        self.assertEqual(codes(client.take()), ["rate-limited"])

    def test_pending_logins_are_bounded(self) -> None:
        chat = self.chat(max_pending_logins=2)
        chat.checker.run = held = HeldRunner()
        clients = [chat.connect() for _ in range(3)]
        for i, client in enumerate(clients):
            client.take()
            client.send(f"/register user{i} password1")
        self.assertEqual(len(held.jobs), 2)
        self.assertEqual(codes(clients[2].take()), ["unavailable"])
        held.release()
        clients[2].send("/register user2 password1")
        held.release()
        self.assertEqual(clients[2].take()[0], "OK register user2")

    def test_a_client_that_stops_reading_is_dropped(self) -> None:
        chat = self.chat(max_sendq=10_000, flood_rate=0)
        alice = chat.in_room("alice")
        slow = chat.in_room("slow")
        alice.take()
        slow.transport.producer.pauseProducing()  # the kernel stopped taking bytes
        seen = []
        for turn in range(10):
            for i in range(20):  # about 2.4 kB a turn
                alice.send(f"message {turn}-{i} " + "x" * 50)
            seen += alice.take()
        self.assertLess(len(slow.transport.value()), 10_000 + 2_500)
        self.assertTrue(slow.closed)
        lines = [parse_line(line) for line in seen]
        self.assertEqual([line.tag for line in lines].count("MSG"), 200)
        (part,) = (line for line in lines if line.tag == "PART")
        self.assertEqual(part.args[2], "slow")

    def test_a_client_that_catches_up_is_kept(self) -> None:
        chat = self.chat(max_sendq=10_000, flood_rate=0)
        alice = chat.in_room("alice")
        slow = chat.in_room("slow")
        for _ in range(20):
            slow.transport.producer.pauseProducing()
            for i in range(50):  # about 6 kB, under the limit each time
                alice.send(f"message {i} " + "x" * 50)
            slow.transport.producer.resumeProducing()
        chat.clock.advance(0)
        self.assertFalse(slow.closed)
