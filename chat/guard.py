"""
Defences: what keeps one client from hurting the server or other users.

Each defence is a small object with no I/O, driven by the protocol and
tested with a L{Clock}: flood control (L{TokenBucket}), login throttling
(L{LoginThrottle}), per-address accounting (L{AddressPolicy}), a bound on
unsent output (L{SendQueue}), quotas on what costs the server lasting
resources, such as rooms and accounts (L{Quota}), and text cleaning
(L{clean_text}).
SECURITY.md says what each one is for and how to tune it.
"""

# test-case-name: tests.test_guard

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from math import ceil
from typing import TypeVar

from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer

__all__ = [
    "AddressPolicy",
    "Limits",
    "LoginThrottle",
    "Quota",
    "SendQueue",
    "TokenBucket",
    "clean_text",
    "has_visible",
    "minutes",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
V = TypeVar("V")

DEFAULT_EXEMPT = "127.0.0.0/8,::1/128"


def parse_networks(text: str) -> tuple[Network, ...]:
    """
    Parse a comma-separated list of networks (C{10.0.0.0/8,::1/128}).

    @raise ValueError: One of them is not a network.
    """
    return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Limits:
    """
    Every tunable bound, in one place; C{twistd chatroom} fills it from its
    options.  A zero turns the corresponding limit off.
    """

    flood_rate: float = 10.0
    flood_burst: float = 20.0
    max_sendq: int = 1024 * 1024
    login_timeout: float = 60.0
    max_connections_per_ip: int = 20
    max_pending_logins: int = 500
    max_rooms: int = 10_000
    max_rooms_per_hour: int = 10
    max_registrations_per_ip: int = 10
    exempt: tuple[Network, ...] = field(default_factory=lambda: parse_networks(DEFAULT_EXEMPT))


# Control characters that could drive someone else's terminal or reorder
# what they read: ANSI/VT escape sequences as a whole, then every other C0
# and C1 control but TAB, the bidirectional embeddings, overrides and
# isolates ("Trojan Source"), and the Unicode line and paragraph separators
# (some clients break lines on them).
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor moves, erasing
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|[ -~]?)"  # any other two-character escape
)
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def clean_text(text: str) -> str:
    """
    Remove what could drive another user's terminal from message text.
    Printable text, the common case, is returned as it is without a regex.
    """
    if text.isprintable():
        return text
    return _UNSAFE.sub("", _ESCAPE_SEQUENCE.sub("", text))


#: Letters and symbols that render as nothing: the Hangul fillers, the
#: braille blank and the Mongolian vowel separator (a format character in
#: today's Unicode, a letter in older tables).
_BLANK_GRAPHICS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def has_visible(text: str) -> bool:
    """
    Whether anything in C{text} would show: a message of only spaces,
    format characters (zero-width spaces and joiners, direction marks,
    the byte order mark, ...), combining marks with nothing to combine
    with, or fillers looks blank to its readers, and is dropped like a
    blank line.  Such characters stay in a message that has visible text,
    where Arabic, Hebrew and emoji sequences need them.

    Unassigned code points count as visible: they may be emoji newer than
    Python's Unicode tables, and they show at least as a box.  So do
    private-use characters, which fonts draw.
    """
    for char in text:
        if "!" <= char <= "~":
            return True
        if char in _BLANK_GRAPHICS:
            continue
        kind = unicodedata.category(char)
        if kind[0] not in "ZCM" or kind in ("Cn", "Co"):
            return True
    return False


class TokenBucket:
    """
    Flood control: C{rate} lines a second on average, C{burst} at once.
    """

    __slots__ = ("burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, clock: IReactorTime, rate: float, burst: float) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = clock.seconds()

    def take(self) -> bool:
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        # The epsilon forgives float rounding: 0.1 s at 10/s is one line.
        if self.tokens >= 0.999999:
            self.tokens -= 1
            return True
        return False

    def delay(self) -> float:
        """
        Seconds until L{take} will succeed, for a sender that would rather
        wait than be refused (the client paces its lines with it).
        """
        tokens = min(self.burst, self.tokens + (self.clock.seconds() - self.stamp) * self.rate)
        return max(0.0, (1 - tokens) / self.rate)


@implementer(IPushProducer)
class SendQueue:
    """
    Watches one connection's unsent output.

    Registered as the transport's producer, it is told when the kernel stops
    taking bytes (C{pauseProducing}) and when the transport's buffer has
    drained again (C{resumeProducing}); in between, everything written is
    counted, and a connection that falls more than C{limit} bytes behind is
    a slow consumer to be dropped before it eats the server's memory.
    """

    __slots__ = ("behind", "limit", "queued")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.behind = False
        self.queued = 0

    def add(self, size: int) -> bool:
        """
        Count C{size} more bytes; whether the connection is still within
        its limit.
        """
        if not self.behind:
            return True
        self.queued += size
        return not self.limit or self.queued <= self.limit

    def pauseProducing(self) -> None:
        self.behind = True

    def resumeProducing(self) -> None:
        self.behind = False
        self.queued = 0

    def stopProducing(self) -> None:
        self.behind = False


class AddressPolicy:
    """
    Which addresses the per-address limits apply to, and how many
    connections each has open.

    IPv6 addresses are counted by their /64: one host usually has a whole
    one, and could otherwise dodge every per-address limit.
    """

    def __init__(self, exempt: Iterable[Network]) -> None:
        self.exempt = tuple(exempt)
        self.connections: dict[str, int] = {}

    def key(self, host: str | None) -> str | None:
        """
        The key per-address limits count this host under, or L{None} when
        it is exempt (or not an IP address: a Unix socket, say).
        """
        if host is None:
            return None
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in self.exempt):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        key = str(address)
        # The connection keeps its key: when it is the host string the
        # transport already holds, share that rather than keep a copy
        # (about 64 bytes a connection).
        return host if key == host else key

    def opened(self, key: str) -> int:
        count = self.connections.get(key, 0) + 1
        self.connections[key] = count
        return count

    def closed(self, key: str) -> None:
        count = self.connections[key] - 1
        if count:
            self.connections[key] = count
        else:
            del self.connections[key]


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """
    Slows password guessing down, per account and per address.

    The first C{free} failures cost nothing extra; each one after that holds
    the answer back for twice as long as the one before (1 s, 2 s, 4 s, ...,
    at most C{max_delay}); after C{lock_after} failures the key is locked
    for C{lock_for} seconds, and attempts are refused without spending any
    bcrypt on them.  A key's record is forgotten C{forget_after} seconds
    after its last failure; a successful login clears the account's record
    (not the address's, or one valid account would unlock an address).
    """

    def __init__(
        self,
        clock: IReactorTime,
        free: int = 3,
        max_delay: float = 30.0,
        lock_after: int = 20,
        lock_for: float = 900.0,
        forget_after: float = 900.0,
        max_records: int = 100_000,
    ) -> None:
        self.clock = clock
        self.free = free
        self.max_delay = max_delay
        self.lock_after = lock_after
        self.lock_for = lock_for
        self.forget_after = forget_after
        self.max_records = max_records
        self._records: dict[str, _Record] = {}

    def locked(self, keys: Iterable[str]) -> float:
        """
        How many seconds until these keys may try again; 0 if they may now.
        """
        now = self.clock.seconds()
        wait = 0.0
        for key in keys:
            record = self._records.get(key)
            if record is not None and record.locked_until > now:
                wait = max(wait, record.locked_until - now)
        return wait

    def failed(self, keys: Iterable[str]) -> float:
        """
        Count a failure against each key.

        @return: How long to hold back the answer, in seconds.
        """
        now = self.clock.seconds()
        delay = 0.0
        for key in keys:
            record = self._records.get(key)
            if record is None or now - record.last > self.forget_after:
                self._prune(now)
                record = self._records[key] = _Record()
            record.failures += 1
            record.last = now
            if record.failures >= self.lock_after:
                record.locked_until = now + self.lock_for
            extra = record.failures - self.free
            if extra > 0:
                delay = max(delay, min(self.max_delay, 2.0 ** (extra - 1)))
        return delay

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)

    def _prune(self, now: float) -> None:
        _bound(self._records, self.max_records, lambda r: now - r.last > self.forget_after)


class Quota:
    """
    At most C{limit} uses per key in any C{period} seconds: a sliding
    window, so "10 an hour" means never an 11th within the hour, however
    the ten were spread.

    Each key keeps the times of its last C{limit} uses.  Keys whose window
    has passed are forgotten once there are C{max_keys} of them; past that
    the least recently used go first, so memory stays bounded against
    someone spraying keys.
    """

    def __init__(
        self, clock: IReactorTime, limit: int, period: float = 3600.0, max_keys: int = 50_000
    ) -> None:
        """
        @param limit: Uses allowed per key per period; 0 turns the quota off.
        """
        self.clock = clock
        self.limit = limit
        self.period = period
        self.max_keys = max_keys
        self._uses: dict[str, list[float]] = {}

    def wait(self, key: str) -> float:
        """
        How many seconds until C{key} may use one more; 0 if it may now.
        """
        uses = self._uses.get(key)
        if not self.limit or uses is None or len(uses) < self.limit:
            return 0.0
        return max(0.0, uses[0] + self.period - self.clock.seconds())

    def spend(self, key: str) -> None:
        """
        Count one use now (whether or not L{wait} allowed it).
        """
        if not self.limit:
            return
        now = self.clock.seconds()
        uses = self._uses.pop(key, None)
        if uses is None:
            self._prune(now)
            uses = []
        uses.append(now)
        if len(uses) > self.limit:
            del uses[0]
        # Re-inserted: the dict's order is least recently used first.
        self._uses[key] = uses

    def refund(self, key: str) -> None:
        """
        Take back the last use of C{key}: what it paid for did not happen.
        """
        uses = self._uses.get(key)
        if uses:
            uses.pop()
            if not uses:
                del self._uses[key]

    def _prune(self, now: float) -> None:
        _bound(self._uses, self.max_keys, lambda times: times[-1] + self.period <= now)


def _bound(entries: dict[str, V], limit: int, forgotten: Callable[[V], bool]) -> None:
    """
    Make room for one more entry, keeping memory bounded against someone
    spraying keys: once there are C{limit} entries, drop the forgotten
    ones, and if that is not enough, the oldest (the dict's first).
    """
    if len(entries) < limit:
        return
    for key in [k for k, v in entries.items() if forgotten(v)]:
        del entries[key]
    while len(entries) >= limit:
        del entries[next(iter(entries))]


def minutes(seconds: float) -> str:
    """
    A wait, rounded up, for an error text: "1 min", "42 min".
    """
    return f"{max(1, ceil(seconds / 60))} min"
