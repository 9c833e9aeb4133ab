"""
Loggers that keep their namespace when their class moves to another
module: operators filter and grep the log on it.
"""

from __future__ import annotations

from twisted.logger import Logger

__all__ = ["KeptLogger"]


class KeptLogger(Logger):
    """
    A class's logger with a fixed namespace, where L{Logger} would take
    the namespace of the module the class now lives in.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        return Logger(
            self.namespace, owner if instance is None else instance, observer=self.observer
        )
