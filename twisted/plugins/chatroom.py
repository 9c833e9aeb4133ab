"""
twistd plugin for chatroom: C{twistd -n chatroom}, and the C{bcrypt}
checker for C{--auth}.

Kept tiny with lazy imports: twistd imports every plugin file to list
them, and an import error here only shows up as "Unknown command".
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import ServiceMaker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.strcred import ICheckerFactory
from twisted.plugin import IPlugin
from zope.interface import implementer

chatroom = ServiceMaker(
    "chatroom",
    "chat.tap",
    "A line-based chat server with rooms, accounts and history.",
    "chatroom",
)


@implementer(ICheckerFactory, IPlugin)
class BcryptCheckerFactory:
    """
    C{--auth bcrypt:PATH}: accounts in a chatroom user file (name:bcrypt
    hash per line) that also takes registrations.
    """

    authType = "bcrypt"
    authHelp = (
        "A chatroom user file: one name:bcrypt-hash per line. Users can "
        "/register; new accounts are appended to the file."
    )
    argStringFormat = "Path to the user file, e.g. bcrypt:data/users.txt"
    credentialInterfaces = (IUsernamePassword,)

    def generateChecker(self, argstring: str) -> Any:
        from chat.storage.files.accounts import BcryptFileChecker

        return BcryptFileChecker(argstring or "data/users.txt")


bcryptChecker = BcryptCheckerFactory()
