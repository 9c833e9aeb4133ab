"""
A Redis client on Twisted: commands pipelined on one connection, replies
parsed by hiredis, and a connection that comes back by itself.

chatroom needs few things of Redis (scripts, a few hashes, one blocking
stream read) but needs them fast and predictable: every chat message is
one script call.  hiredis does the part worth a C library (parsing
replies, packing commands); what is left is a queue of Deferreds, a
reconnecting L{ClientService} and a watchdog, each a few lines.
docs/performance.md has the measurements against txredisapi and redis-py
that chose this.
"""

# test-case-name: tests.test_resp

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from twisted.application.internet import ClientService
from twisted.application.service import MultiService
from twisted.internet import error
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IProtocolFactory, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from chat.interfaces import StoreUnavailable

__all__ = ["RedisAddress", "RedisClient", "RedisError", "parse_redis_url"]

Arg = str | bytes | int | float


class RedisError(Exception):
    """
    An error reply from Redis (C{-ERR ...}): the command was refused, and
    the connection is fine.
    """


class RedisAddress:
    """
    Where a Redis server is and how to talk to it, from a C{redis://} URL.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        username: str | None = None,
        path: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.db = db
        self.password = password
        self.username = username
        self.path = path

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        if self.path is not None:
            return UNIXClientEndpoint(reactor, self.path)
        return HostnameEndpoint(reactor, self.host, self.port)

    @property
    def where(self) -> str:
        """
        The host and port (or the socket's path), for the logs.
        """
        return self.path if self.path is not None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        # Never the password: this goes to the logs.
        if self.path is not None:
            return f"unix://{self.path}?db={self.db}"
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """
    Read C{redis://[[user]:password@]host[:port][/db]} or
    C{unix:///path/redis.sock[?db=N]}, the forms redis-cli and redis-py
    accept.

    @raise ValueError: It is not such a URL.
    """
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if parts.scheme == "unix":
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        if not parts.path:
            raise ValueError("unix:// needs the path of the socket")
        return RedisAddress(
            db=int(query.get("db", 0)), password=password, username=username, path=parts.path
        )
    if parts.scheme != "redis":
        raise ValueError("expected redis://host:port/db or unix:///path")
    db = parts.path.strip("/")
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(db) if db else 0,
        password=password,
        username=username,
    )


class RedisProtocol(Protocol):
    """
    One connection: each command's Deferred waits in a queue, and replies,
    which Redis sends in order, fire them in order.
    """

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._reader = hiredis.Reader(replyError=RedisError, encoding="utf-8", errors="replace")
        self._waiting: deque[tuple[Deferred[Any], float]] = deque()

    def connectionMade(self) -> None:
        self.client._made(self)

    def execute(self, args: Sequence[Arg], timeout: float) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._waiting.append((d, self.client.clock.seconds() + timeout))
        assert self.transport is not None
        # hiredis's stub types the tuple as one element long.
        self.transport.write(hiredis.pack_command(tuple(args)))  # type: ignore[arg-type]
        return d

    def dataReceived(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as e:
                self.client.log.error("Redis sent garbage: {error}", error=e)
                self.abort()
                return
            if reply is False:
                return
            if not waiting:
                # Nothing asked for it: a push message or a bug; either way
                # the replies are out of step from here on.
                self.client.log.error("Unexpected reply from Redis: {reply!r}", reply=reply)
                self.abort()
                return
            d, _ = waiting.popleft()
            if isinstance(reply, RedisError):
                d.errback(reply)
            else:
                d.callback(reply)

    def abort(self) -> None:
        """
        Drop the connection now, failing every command still waiting.
        """
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def overdue(self, now: float) -> bool:
        """
        Whether the oldest command has waited past its deadline: Redis (or
        the path to it) hangs.
        """
        return bool(self._waiting) and self._waiting[0][1] < now

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        waiting, self._waiting = self._waiting, deque()
        self.client._lost(self)
        for d, _ in waiting:
            d.errback(StoreUnavailable("lost the connection to Redis"))


def describe_failure(failure: Failure) -> str:
    """
    Why a connection attempt failed, in the few words an operator needs.
    """
    if failure.check(error.ConnectionRefusedError):
        return "connection refused"
    if failure.check(error.DNSLookupError):
        return "unknown host"
    if failure.check(error.TimeoutError, error.TCPTimedOutError):
        return "connection timed out"
    if failure.check(error.NoRouteError):
        return "no route to host"
    value = failure.value
    if isinstance(value, error.ConnectError) and isinstance(value.osError, int):
        # An errno: a Unix socket's path that does not exist, say.
        return os.strerror(value.osError).lower()
    return failure.getErrorMessage()


@implementer(IStreamClientEndpoint)
class _Attempts:
    """
    The endpoint to Redis, remembering why the last attempt failed: the
    retry policy is told only how many attempts failed, and says why.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint
        self.failure: Failure | None = None

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.failure = None

        def failed(failure: Failure) -> Failure:
            self.failure = failure
            return failure

        d: Deferred[Any] = self.endpoint.connect(factory)
        return d.addErrback(failed)


@provider(ILogObserver)
def _discard(event: object) -> None:
    """
    A log observer that drops everything.
    """


class _QuietClientService(ClientService):
    """
    A L{ClientService} that does not log C{Scheduling retry ...} at each
    attempt: L{RedisClient}'s retry policy logs one line instead, with the
    reason.
    """

    _log = Logger(observer=_discard)


class RedisClient(MultiService):
    """
    A connection to Redis that reconnects by itself while the service
    runs, with an exponential backoff (from C{initial_delay} doubling up to
    C{max_delay} seconds, each delay shortened by up to a fifth at random
    so that many processes do not retry in step).  Each failed attempt
    logs one line that says why.

    Commands sent while there is no connection fail at once with
    L{StoreUnavailable}: callers answer C{ERR unavailable} rather than
    queue work that nobody can promise will happen.  A command that takes
    longer than its timeout drops the connection, failing it and all those
    behind it, and a new connection is made.

    @ivar on_connect: Called with no arguments each time a connection is
        ready for commands.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        address: RedisAddress,
        name: str = "redis",
        timeout: float = 5.0,
        max_delay: float = 5.0,
        scripts: Sequence[str] = (),
        initial_delay: float = 0.25,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """
        @param jitter: Returns a number in [0, 1): how much of the fifth
            to take off a delay.
        """
        super().__init__()
        self.clock: IReactorTime = reactor
        self.address = address
        self.name = name
        self.timeout = timeout
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.scripts = list(scripts)
        self.on_connect: list[Callable[[], object]] = []
        self._protocol: RedisProtocol | None = None
        self._ever_connected = False
        self._jitter = jitter
        #: Why there is no connection, for L{StoreUnavailable}'s text.
        self._down = "not connected yet"
        factory = Factory.forProtocol(lambda: RedisProtocol(self))
        # Not "Starting factory ... Stopping factory" at every attempt.
        factory.noisy = False
        self._attempts = _Attempts(address.endpoint(reactor))
        self._connector = _QuietClientService(
            self._attempts, factory, retryPolicy=self._retry_delay, clock=reactor
        )
        self._connector.setServiceParent(self)
        self._watchdog = LoopingCall(self._check)
        self._watchdog.clock = reactor

    def _retry_delay(self, attempt: int) -> float:
        """
        L{ClientService}'s retry policy: how long to wait after C{attempt}
        failures in a row, saying why the last attempt failed.  (After a
        lost connection, which L{_lost} has logged, there is no failed
        attempt to report.)
        """
        base = min(self.initial_delay * 2.0 ** min(attempt - 1, 60), self.max_delay)
        delay = base * (1 - 0.2 * self._jitter())
        failure, self._attempts.failure = self._attempts.failure, None
        if failure is not None:
            self._down = describe_failure(failure)
            self.log.warn(
                "{name}: Redis at {where}: {reason}; retrying in {delay:.2g} s",
                name=self.name,
                where=self.address.where,
                reason=self._down,
                delay=delay,
            )
        return delay

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def startService(self) -> None:
        super().startService()
        self._watchdog.start(1.0, now=False)

    def stopService(self) -> Deferred[None]:
        if self._watchdog.running:
            self._watchdog.stop()
        return super().stopService()  # type: ignore[no-any-return]

    def execute(self, *args: Arg, timeout: float | None = None) -> Deferred[Any]:
        """
        Send one command.

        @return: A Deferred firing with the reply (C{str}, C{int}, L{None}
            or a list of them), or failing with L{RedisError} for an error
            reply or L{StoreUnavailable} when Redis cannot be reached.
        """
        protocol = self._protocol
        if protocol is None:
            return fail(StoreUnavailable(self._down))
        return protocol.execute(args, self.timeout if timeout is None else timeout)

    def _made(self, protocol: RedisProtocol) -> None:
        # Set-up goes first on the wire; whatever follows is pipelined
        # behind it and runs after it, so nobody waits for the replies.
        address = self.address
        if address.password is not None:
            auth: list[Arg] = ["AUTH"]
            if address.username is not None:
                auth.append(address.username)
            auth.append(address.password)
            protocol.execute(auth, self.timeout).addErrback(self._setup_failed, protocol)
        if address.db:
            protocol.execute(("SELECT", address.db), self.timeout).addErrback(
                self._setup_failed, protocol
            )
        for script in self.scripts:
            protocol.execute(("SCRIPT", "LOAD", script), self.timeout).addErrback(
                self._setup_failed, protocol
            )
        self._protocol = protocol
        self.log.info(
            "{name}: {again}connected to Redis at {address}",
            name=self.name,
            again="re" if self._ever_connected else "",
            address=str(address),
        )
        self._ever_connected = True
        for callback in list(self.on_connect):
            callback()

    def _setup_failed(self, failure: Failure, protocol: RedisProtocol) -> None:
        if failure.check(RedisError):
            self.log.error(
                "{name}: Redis refused the connection's set-up: {error}",
                name=self.name,
                error=failure.value,
            )
            if protocol.transport is not None:
                protocol.transport.loseConnection()

    def _lost(self, protocol: RedisProtocol) -> None:
        if self._protocol is protocol:
            self._protocol = None
            self._down = "lost the connection to Redis"
            if self.running:
                self.log.warn(
                    "{name}: lost the connection to Redis at {address}; reconnecting",
                    name=self.name,
                    address=str(self.address),
                )

    def _check(self) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.overdue(self.clock.seconds()):
            self.log.warn("{name}: Redis does not answer; reconnecting", name=self.name)
            protocol.abort()
