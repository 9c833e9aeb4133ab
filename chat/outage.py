"""
Storage outages as the service sees them: told to the log once when they
start and once when they end.
"""

# test-case-name: tests.test_protocol.OutageLogTests

from __future__ import annotations

from chat.logs import KeptLogger

__all__ = ["Outage"]


class Outage:
    """
    Tells the log once that the store is unavailable, and once that it is
    back, however many messages, logins and registrations it refused
    meanwhile: an outage of a few seconds must not write a line per
    message.  The end is the next thing the store does.

    An outage is expected (Redis restarts, a disk fills up) and users are
    already told (C{ERR unavailable}), so the lines are warnings with no
    traceback; anything else that fails is a bug, logged as one by the
    caller.
    """

    # Its module's name before it had one of its own.
    log = KeptLogger(namespace="chat.service.Outage")

    def __init__(self, store: str) -> None:
        """
        @param store: What is unavailable, for the log: C{Redis}, C{Storage}.
        """
        self.store = store
        #: How many of each were refused in this outage ({} when there is none).
        self.refused: dict[str, int] = {}

    def refuse(self, what: str, count: int, error: object, action: str, who: str) -> None:
        """
        Count C{count} C{what} (messages, logins, ...) refused for want of
        the store, saying so the first time in an outage.

        @param action: What cannot be done, e.g. C{store messages}.
        @param who: Who gets C{ERR unavailable} for it, e.g. C{senders}.
        """
        refused = self.refused
        if what not in refused:
            refused[what] = 0
            self.log.warn(
                "{store} unavailable: cannot {action} ({error}); {who} get ERR unavailable",
                store=self.store,
                action=action,
                error=error,
                who=who,
            )
        refused[what] += count

    def over(self) -> None:
        """
        The store did something: if it was out, say it is back.
        """
        if self.refused:
            refused, self.refused = self.refused, {}
            counts = [
                f"{count} {what if count != 1 else what.removesuffix('s')}"
                for what, count in refused.items()
            ]
            self.log.warn(
                "{store} available again; {counts} {were} refused meanwhile",
                store=self.store,
                counts=", ".join(counts),
                were="was" if list(refused.values()) == [1] else "were",
            )
