"""
The Redis client, driven by hand: bytes in, bytes out, a Clock for time.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from chat.interfaces import StoreUnavailable
from chat.resp import RedisClient, RedisError, RedisProtocol, parse_redis_url


class URLTests(SynchronousTestCase):
    def test_forms(self) -> None:
        plain = parse_redis_url("redis://db.example:6380/2")
        self.assertEqual(
            (plain.host, plain.port, plain.db, plain.password), ("db.example", 6380, 2, None)
        )
        default = parse_redis_url("redis://localhost")
        self.assertEqual((default.port, default.db), (6379, 0))
        secret = parse_redis_url("redis://chat:s%40cret@10.0.0.5/1")
        self.assertEqual((secret.username, secret.password), ("chat", "s@cret"))
        unix = parse_redis_url("unix:///run/redis.sock?db=3")
        self.assertEqual((unix.path, unix.db), ("/run/redis.sock", 3))

    def test_the_password_stays_out_of_the_logs(self) -> None:
        self.assertNotIn("hunter2", str(parse_redis_url("redis://:hunter2@host/0")))

    def test_not_a_redis_url(self) -> None:
        for url in ["http://host", "host:6379", "redis://host/x", "unix://"]:
            with self.assertRaises(ValueError, msg=url):
                parse_redis_url(url)


class Connected:
    """
    A client with one connection over a StringTransport.
    """

    def __init__(self, url: str = "redis://127.0.0.1/0", scripts: tuple[str, ...] = ()) -> None:
        self.clock = MemoryReactorClock()
        self.client = RedisClient(self.clock, parse_redis_url(url), scripts=scripts, timeout=5)
        self.connects: list[None] = []
        self.client.on_connect.append(lambda: self.connects.append(None))
        self.protocol = RedisProtocol(self.client)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


class ProtocolTests(SynchronousTestCase):
    def test_set_up_goes_first(self) -> None:
        c = Connected("redis://chat:pw@127.0.0.1/4", scripts=("return 1",))
        self.assertEqual(
            c.sent(),
            b"*3\r\n$4\r\nAUTH\r\n$4\r\nchat\r\n$2\r\npw\r\n"
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n4\r\n"
            b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$8\r\nreturn 1\r\n",
        )
        self.assertEqual(c.connects, [None])
        self.assertTrue(c.client.connected)

    def test_replies_fire_commands_in_order(self) -> None:
        c = Connected()
        first = c.client.execute("GET", "a")
        second = c.client.execute("GET", "b")
        third = c.client.execute("XREAD", "STREAMS", "s", "0")
        self.assertEqual(c.sent().count(b"*"), 3)
        # Replies may arrive in any pieces.
        c.protocol.dataReceived(b"$2\r\nhi\r\n$-1")
        self.assertEqual(self.successResultOf(first), "hi")
        self.assertNoResult(second)
        c.protocol.dataReceived(b"\r\n*1\r\n*2\r\n$1\r\ns\r\n*0\r\n")
        self.assertIsNone(self.successResultOf(second))
        self.assertEqual(self.successResultOf(third), [["s", []]])

    def test_error_reply(self) -> None:
        c = Connected()
        d = c.client.execute("NOPE")
        after = c.client.execute("PING")
        c.protocol.dataReceived(b"-ERR unknown command\r\n+PONG\r\n")
        self.assertIn("unknown command", str(self.failureResultOf(d, RedisError).value))
        self.assertEqual(self.successResultOf(after), "PONG")
        self.assertFalse(c.transport.disconnecting)

    def test_no_connection_fails_at_once(self) -> None:
        client = RedisClient(MemoryReactorClock(), parse_redis_url("redis://127.0.0.1"))
        self.failureResultOf(client.execute("PING"), StoreUnavailable)

    def test_a_lost_connection_fails_every_waiting_command(self) -> None:
        c = Connected()
        waiting = [c.client.execute("PING") for _ in range(3)]
        c.protocol.connectionLost(Failure(ConnectionLost()))
        for d in waiting:
            self.failureResultOf(d, StoreUnavailable)
        self.assertFalse(c.client.connected)
        self.failureResultOf(c.client.execute("PING"), StoreUnavailable)

    def test_a_hung_redis_is_dropped(self) -> None:
        c = Connected()
        c.client.execute("PING")
        c.clock.advance(4)
        c.client._check()
        self.assertFalse(c.transport.disconnecting)
        c.clock.advance(2)
        c.client._check()
        self.assertTrue(c.transport.disconnecting)

    def test_a_slow_command_has_its_own_timeout(self) -> None:
        c = Connected()
        c.client.execute("XREAD", "BLOCK", 9000, "STREAMS", "s", "$", timeout=12)
        c.clock.advance(10)
        c.client._check()
        self.assertFalse(c.transport.disconnecting)

    def test_garbage_drops_the_connection(self) -> None:
        c = Connected()
        d = c.client.execute("PING")
        c.protocol.dataReceived(b"?what\r\n")
        self.assertTrue(c.transport.disconnecting)
        self.flushLoggedErrors()
        c.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, StoreUnavailable)

    def test_a_reply_nobody_asked_for_drops_the_connection(self) -> None:
        c = Connected()
        c.protocol.dataReceived(b"+OK\r\n")
        self.assertTrue(c.transport.disconnecting)


class Refusing:
    """
    An endpoint to a host where nothing listens, as a real connector
    behaves: the factory is started and stopped around each attempt.
    """

    def __init__(self, clock: MemoryReactorClock) -> None:
        self.clock = clock
        self.attempts: list[float] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        self.attempts.append(self.clock.seconds())
        factory.doStart()
        factory.doStop()
        return fail(ConnectionRefusedError())


def retry_now(clock: MemoryReactorClock, endpoint: Refusing) -> None:
    """
    Move the clock on, call by call (the watchdog has some too), to the
    next attempt.
    """
    attempts = len(endpoint.attempts)
    while len(endpoint.attempts) == attempts:
        clock.advance(min(call.getTime() for call in clock.getDelayedCalls()) - clock.seconds())


class RetryTests(SynchronousTestCase):
    def refused(self, jitter: float) -> tuple[MemoryReactorClock, RedisClient, Refusing]:
        clock = MemoryReactorClock()
        client = RedisClient(
            clock,
            parse_redis_url("redis://127.0.0.1:6379/0"),
            name="redis commands",
            jitter=lambda: jitter,
        )
        endpoint = Refusing(clock)
        client._attempts.endpoint = endpoint  # type: ignore[assignment]
        return clock, client, endpoint

    def test_one_line_per_failed_attempt_with_the_reason_and_the_backoff(self) -> None:
        clock, client, endpoint = self.refused(jitter=0.0)
        with capturedLogs() as events:
            client.startService()
            for _ in range(7):
                retry_now(clock, endpoint)
        # Nothing else: no "Starting factory", no "Scheduling retry".
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                f"redis commands: Redis at 127.0.0.1:6379: connection refused; retrying in {d} s"
                for d in ["0.25", "0.5", "1", "2", "4", "5", "5", "5"]
            ],
        )
        self.assertEqual({e["log_level"] for e in events}, {LogLevel.warn})
        waits = [b - a for a, b in zip(endpoint.attempts, endpoint.attempts[1:], strict=False)]
        self.assertEqual(waits[:6], [0.25, 0.5, 1.0, 2.0, 4.0, 5.0])
        # Callers learn why, too.
        failure = self.failureResultOf(client.execute("PING"), StoreUnavailable)
        self.assertEqual(str(failure.value), "connection refused")
        client.stopService()

    def test_jitter_shortens_delays_within_the_cap(self) -> None:
        for jitter in (0.5, 0.999):
            clock, client, endpoint = self.refused(jitter)
            with capturedLogs():
                client.startService()
                for _ in range(10):
                    retry_now(clock, endpoint)
            waits = [b - a for a, b in zip(endpoint.attempts, endpoint.attempts[1:], strict=False)]
            for attempt, wait in enumerate(waits):
                base = min(0.25 * 2**attempt, 5.0)
                self.assertAlmostEqual(wait, base * (1 - 0.2 * jitter))
                self.assertLessEqual(wait, client.max_delay)
            client.stopService()
