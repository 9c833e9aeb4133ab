"""
The line protocol's public names; the code lives in L{chat.wire.protocol}.

Kept so that C{chat.protocol.ChatFactory}, what the plugin and embedders
import, stays where it always was.
"""

from chat.commands import State
from chat.wire.protocol import ChatFactory, ChatProtocol

__all__ = ["ChatFactory", "ChatProtocol", "State"]
