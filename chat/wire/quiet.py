"""
Connections that close without sending a byte: load balancers' health
checks and port scans.  Logged as a count, not one line each: a health
check every 5 s would otherwise be 17,000 lines a day, per process.
"""

# test-case-name: tests.test_protocol.SilentConnectionTests

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from chat.logs import KeptLogger

__all__ = ["SilentTally"]


class SilentTally:
    """
    Counts silent connections and logs the count at most once an
    C{interval}: the first one is logged at once (so an operator sees the
    kind exists, and who makes it), the rest as one line per interval.
    Needs no timer: a summary is written by the close that finds the
    interval over.
    """

    # Its module's name before chat/wire/ existed.
    log = KeptLogger(namespace="chat.quiet.SilentTally")

    def __init__(self, clock: IReactorTime, interval: float = 3600.0) -> None:
        self.clock = clock
        self.interval = interval
        self.count = 0
        self.since: float | None = None

    def closed(self, peer: str) -> None:
        """
        A connection from C{peer} closed without having sent anything.
        """
        now = self.clock.seconds()
        if self.since is None:
            self.since = now
            self.log.info(
                "Connection from {peer} closed without sending anything; such "
                "connections (health checks, port scans) are counted, and the count "
                "is logged at most once every {minutes} min",
                peer=peer,
                minutes=round(self.interval / 60),
            )
            return
        self.count += 1
        if now - self.since >= self.interval:
            self.log.info(
                "{count} connections closed without sending anything in the last {minutes} min",
                count=self.count,
                minutes=round((now - self.since) / 60),
            )
            self.count = 0
            self.since = now
