"""
Accounts and passwords, under their older name: they live in
L{chat.storage.passwords} and L{chat.storage.files.accounts} now.
"""

from __future__ import annotations

from chat.storage.files.accounts import BcryptFileChecker
from chat.storage.passwords import check_password, decode_credentials, hash_password

__all__ = ["BcryptFileChecker", "check_password", "decode_credentials", "hash_password"]
