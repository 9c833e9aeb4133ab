"""
C{twistd chatroom}: options, and the wiring of the whole server.

This is the one place that knows the global reactor; everything below it
gets the reactor (or just a clock) passed in.
"""

# test-case-name: tests.test_tap

from __future__ import annotations

import os
import signal
import threading
from functools import partial
from pathlib import Path
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.cred.strcred import AuthOptionMixin
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThreadPool
from twisted.python import usage
from twisted.python.threadpool import ThreadPool
from twisted.python.usage import CoerceParameter

from chat import PROTOCOL_VERSION, __version__
from chat.avatar import ChatRealm
from chat.commands import valid_name
from chat.guard import DEFAULT_EXEMPT, Limits, Network, parse_networks
from chat.lock import DataLock, DirectoryInUse, lock_directory
from chat.protocol import ChatFactory
from chat.resp import parse_redis_url
from chat.service import ChatService
from chat.sessions import TokenChecker
from chat.storage.accounts import IAccountStore
from chat.storage.files import BcryptFileChecker, FileChatStore, LocalBackend
from chat.storage.redis import RedisAccounts, RedisBackend
from chat.storage.tokens import DEFAULT_TTL

__all__ = ["DEFAULT_PORT", "Options", "ThreadPoolService", "makeService"]

DEFAULT_PORT = "tcp:5000:interface=127.0.0.1"


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("not a whole number") from None


def _positive_int(value: str) -> int:
    number = _int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _rounds(value: str) -> int:
    number = _int(value)
    if not 4 <= number <= 31:
        raise ValueError("bcrypt cost goes from 4 to 31")
    return number


def _networks(value: str) -> tuple[Network, ...]:
    return parse_networks(value)


def _rate(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("not a number") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


class Options(usage.Options, AuthOptionMixin):
    """
    The command line of C{twistd chatroom}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run a chatroom server: a line-based chat that a person can use from "
        "telnet or nc. Accounts, rooms and history are kept under --data."
    )
    supportedInterfaces = [IUsernamePassword]

    optParameters = [
        ["data", "d", "./data", "Directory for accounts, rooms and history (created if missing)."],
        [
            "store",
            None,
            None,
            "Keep accounts, rooms, history and presence in Redis, shared with every "
            "chatroom process pointed at it: redis://[[user]:password@]host[:port][/db] or "
            "unix:///path/redis.sock?db=N. [default: files under --data]",
        ],
        [
            "history-cap",
            None,
            100_000,
            "With --store redis: about how many messages each room's history keeps.",
            _positive_int,
        ],
        [
            "history",
            None,
            50,
            "How many past messages a user sees on joining a room.",
            _positive_int,
        ],
        [
            "token-ttl",
            None,
            DEFAULT_TTL,
            "Seconds a session token (/token, for /resume) stays valid.",
            _positive_int,
        ],
        ["bcrypt-rounds", None, 12, "bcrypt cost for new password hashes (4 to 31).", _rounds],
        [
            "bcrypt-threads",
            None,
            max(2, os.cpu_count() or 2),
            "Threads that hash passwords.",
            _positive_int,
        ],
        [
            "flood-rate",
            None,
            10.0,
            "Lines a second one connection may send on average (0: no limit).",
            _rate,
        ],
        ["flood-burst", None, 20, "Lines one connection may send at once.", _positive_int],
        [
            "max-sendq",
            None,
            1024 * 1024,
            "Bytes of unsent output after which a client that stopped reading is "
            "dropped (0: no limit).",
            _positive_int,
        ],
        [
            "login-timeout",
            None,
            60,
            "Seconds a connection may stay without logging in (0: forever).",
            _rate,
        ],
        [
            "max-connections-per-ip",
            None,
            20,
            "Connections one address (an IPv6 /64) may have open (0: no limit).",
            _positive_int,
        ],
        [
            "max-pending-logins",
            None,
            500,
            "Logins and registrations that may wait for bcrypt at once; more get "
            "ERR unavailable (0: no limit).",
            _positive_int,
        ],
        [
            "exempt-networks",
            None,
            DEFAULT_EXEMPT,
            "Comma-separated networks free of the per-address limits ('' for none).",
            _networks,
        ],
        [
            "max-rooms",
            None,
            10_000,
            "Rooms the server may hold in all; past it /create gets ERR rate-limited "
            "(0: no limit).",
            _positive_int,
        ],
        [
            "max-rooms-per-hour",
            None,
            10,
            "Rooms one account may create in any hour (0: no limit).",
            _positive_int,
        ],
        [
            "max-registrations-per-ip",
            None,
            10,
            "Registrations one address (an IPv6 /64) may attempt in any hour; "
            "--exempt-networks are exempt (0: no limit).",
            _positive_int,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []
        self["admins"] = []
        # --help shows docstrings as they are written, indentation and all.
        self.docs = {name: " ".join(doc.split()) if doc else doc for name, doc in self.docs.items()}
        for name, handler in self._dispatch.items():
            if isinstance(handler, CoerceParameter):
                self._dispatch[name] = _NamedCoerce(self, handler.coerce)

    def opt_port(self, description: str) -> None:
        """
        Endpoint to listen on, e.g. tcp:5000:interface=127.0.0.1,
        ssl:5001:privateKey=key.pem:certKey=cert.pem or unix:/tmp/chat.sock.
        Repeat for several. [default: tcp:5000:interface=127.0.0.1]
        """
        self["ports"].append(description)

    opt_p = opt_port

    def opt_admin(self, name: str) -> None:
        """
        An account that may moderate every room, lock accounts, send
        notices to everyone, drop rooms and read the audit log. Repeat for
        several; the account need not exist yet (register it at once).
        """
        if not valid_name(name):
            raise usage.UsageError(f"--admin {name}: names are 1 to 32 of A-Z a-z 0-9 _ -")
        self["admins"].append(name)

    def opt_auth(self, description: str) -> None:
        """
        The credential checker, as a strcred string: bcrypt:PATH (a chatroom
        user file, registration works) or any checker --help-auth lists
        (registration is then closed). [default: bcrypt:DATA/users.txt, the
        file under --data; with --store, the accounts in Redis]
        """
        try:
            AuthOptionMixin.opt_auth(self, description)  # type: ignore[no-untyped-call]
        except usage.UsageError as e:
            raise usage.UsageError(
                f"--auth {description}: {e} (twistd chatroom --help-auth lists the checkers)"
            ) from None

    def opt_version(self) -> None:
        """
        Show chatroom's version and exit.
        """
        import twisted

        print(
            f"chatroom {__version__} (protocol {PROTOCOL_VERSION}, Twisted {twisted.__version__})"
        )
        raise SystemExit(0)

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Under twistd, a mistake is reported in one line: twistd itself
        would print the whole --help before it, burying the line that
        matters.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            raise SystemExit(f"twistd chatroom: {e}; see twistd chatroom --help") from None

    def postOptions(self) -> None:
        if not self["ports"]:
            self["ports"] = [DEFAULT_PORT]
        for description in self["ports"]:
            # Parse now, so that a typo is a usage error rather than a
            # traceback once the server starts.
            try:
                serverFromString(None, description)
            except Exception:
                raise usage.UsageError(
                    f"--port {description}: not an endpoint chatroom can listen on; "
                    "e.g. tcp:5000:interface=127.0.0.1, "
                    "ssl:5001:privateKey=key.pem:certKey=cert.pem or unix:/tmp/chat.sock"
                ) from None
        if isinstance(self["exempt-networks"], str):
            self["exempt-networks"] = parse_networks(self["exempt-networks"])
        if self["store"] is not None:
            try:
                self["store"] = parse_redis_url(self["store"])
            except ValueError:
                raise usage.UsageError(
                    f"--store {self['store']}: not a Redis address; "
                    "e.g. redis://127.0.0.1:6379/0 or unix:///run/redis.sock?db=0"
                ) from None
        if self["bcrypt-threads"] < 1:
            raise usage.UsageError("--bcrypt-threads must be at least 1")


class _NamedCoerce(CoerceParameter):
    """
    Names the option and the value in the error, which Twisted's own
    "Parameter type enforcement failed" does not.
    """

    def dispatch(self, parameterName: str, value: str | None) -> None:
        if value is None:
            raise usage.UsageError(f"--{parameterName} needs a value")
        try:
            self.options.opts[parameterName] = self.coerce(value)
        except ValueError as e:
            raise usage.UsageError(f"--{parameterName} {value}: {e}") from None


class ThreadPoolService(Service):
    """
    Starts and stops a thread pool with the server.  bcrypt gets a pool of
    its own: Twisted's default pool also resolves names, and a login storm
    must not starve that.
    """

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        self.pool.stop()


class CleanExitService(Service):
    """
    SIGTERM and Ctrl-C (SIGINT) are how operators stop chatroom, so they are
    a normal exit: stop the reactor (every service says goodbye and flushes)
    and exit with status 0, where twistd would re-raise the signal once it
    is done (status 130 for Ctrl-C).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        # After reactor.run() has installed its own handlers, replace them.
        self.reactor.callWhenRunning(self._install)

    def _install(self) -> None:
        signal.signal(signal.SIGTERM, self._terminate)
        # A SIGINT ignored by whoever started us (nohup, a shell's "&")
        # stays ignored, as the reactor leaves it.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self._terminate)

    def _terminate(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reactor.stop)


class DataLockService(Service):
    """
    Holds the data directory's lock (see L{chat.lock}) for the life of the
    process; it is never released by hand, so that it outlasts the last
    flush at shutdown.
    """

    def __init__(self, lock: DataLock) -> None:
        self.lock = lock

    def startService(self) -> None:
        super().startService()
        # twistd forks into the background between makeService and here.
        self.lock.record_pid()


def _lock_data(data: str) -> DataLock:
    """
    Take the lock of the data directory, or end the process with one line
    that says who holds it and what to do: twistd would print a traceback
    for any other exception raised in makeService.
    """
    try:
        return lock_directory(Path(data))
    except DirectoryInUse as e:
        holder = "another chatroom server" + (f" (pid {e.pid})" if e.pid else "")
        raise SystemExit(
            f"chatroom: {data} is in use by {holder}; stop it or use another --data"
        ) from None
    except OSError as e:
        raise SystemExit(
            f"chatroom: cannot use {data}: {e}; fix it or use another --data"
        ) from None


_niced = threading.local()


def _run_niced(reactor: Any, pool: ThreadPool, f: Any, *args: Any) -> Any:
    """
    Run C{f} in C{pool} at a lower CPU priority than the reactor's thread.

    bcrypt is meant to be slow; during a login storm its threads would
    otherwise take every core, and the chat, which is quick work but
    latency-bound, would wait for the scheduler.  Linux applies
    C{setpriority} on a thread ID to that thread alone.
    """

    def niced() -> Any:
        if not getattr(_niced, "done", False):
            _niced.done = True
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
            except OSError:
                pass
        return f(*args)

    return deferToThreadPool(reactor, pool, niced)


def makeService(options: Options | dict[str, Any], reactor: Any = None) -> IService:
    """
    Wire the server: the bcrypt pool, the store, the rooms, the portal and
    one listening port per C{--port}.

    @param reactor: The reactor to run on; the global one (and a process of
        its own, whose SIGTERM and SIGINT this then handles, and which holds
        the lock of the data directory on the file store) when not given.
    """
    top = MultiService()
    if reactor is None:
        if options.get("store") is None:
            DataLockService(_lock_data(options["data"])).setServiceParent(top)
        from twisted.internet import reactor as _reactor

        reactor = _reactor
        CleanExitService(reactor).setServiceParent(top)
    data = Path(options["data"])

    pool = ThreadPool(minthreads=0, maxthreads=options["bcrypt-threads"], name="chatroom-bcrypt")
    ThreadPoolService(pool).setServiceParent(top)

    def run_io(f: Any, *args: Any) -> Any:
        # Disk work (fsync) shares the reactor's own pool; only bcrypt is
        # heavy enough to need one of its own.
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    checkers: list[ICredentialsChecker] = list(options.get("credCheckers") or [])
    backend: Any
    if options.get("store") is not None:
        backend = RedisBackend(reactor, options["store"], history_cap=options["history-cap"])
        if not checkers:
            checkers = [RedisAccounts(backend)]
    else:
        backend = LocalBackend(FileChatStore(data, run=run_io), reactor)
        if not checkers:
            checkers = [BcryptFileChecker(data / "users.txt")]
    limits = Limits(
        flood_rate=options["flood-rate"],
        flood_burst=options["flood-burst"],
        max_sendq=options["max-sendq"],
        login_timeout=options["login-timeout"],
        max_connections_per_ip=options["max-connections-per-ip"],
        max_pending_logins=options["max-pending-logins"],
        exempt=options["exempt-networks"],
        max_rooms=options["max-rooms"],
        max_rooms_per_hour=options["max-rooms-per-hour"],
        max_registrations_per_ip=options["max-registrations-per-ip"],
    )
    chat = ChatService(
        backend,
        reactor,
        history=options["history"],
        max_rooms=limits.max_rooms,
        rooms_per_hour=limits.max_rooms_per_hour,
        admins=options.get("admins", ()),
        token_ttl=options["token-ttl"],
    )
    chat.setServiceParent(top)

    for checker in checkers:
        if isinstance(checker, BcryptFileChecker | RedisAccounts):
            checker.rounds = options["bcrypt-rounds"]
            checker.run = partial(_run_niced, reactor, pool)
    accounts = next((c for c in checkers if IAccountStore.providedBy(c)), None)
    chat.accounts = accounts

    realm = ChatRealm(chat)
    if accounts is not None:
        # /resume: tokens for chatroom's own accounts only; with another
        # --auth checker it is refused like a wrong token.
        checkers = [*checkers, TokenChecker(backend.tokens, accounts, reactor)]
    portal = Portal(realm, checkers)
    factory = ChatFactory(chat, portal, realm, accounts, reactor, limits=limits)
    for description in options["ports"]:
        # Ports bind (and take connections) at once, before twistd drops
        # privileges; until the rooms are loaded clients are answered
        # ERR unavailable (ChatService.started).
        port = StreamServerEndpointService(serverFromString(reactor, description), factory)
        # As strports.service does: a port that cannot bind stops the start.
        port._raiseSynchronously = True
        port.setServiceParent(top)
    return top
