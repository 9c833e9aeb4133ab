"""
The embedded store: everything under the data directory (C{--data}),
for one process.  L{rooms} and L{accounts} are its features.
"""

from __future__ import annotations

from chat.storage.files.accounts import BcryptFileChecker
from chat.storage.files.rooms import FileChatStore, LocalBackend

__all__ = ["BcryptFileChecker", "FileChatStore", "LocalBackend"]
