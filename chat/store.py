"""
The embedded store, under its older name: it lives in
L{chat.storage.files.rooms} now.
"""

from __future__ import annotations

from chat.storage.files.rooms import (
    FileChatStore,
    Runner,
    default_open_files,
    read_tail_lines,
)

__all__ = ["FileChatStore", "Runner", "default_open_files", "read_tail_lines"]
