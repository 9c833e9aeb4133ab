"""
chatroom: a line-based chat server and client on Twisted.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
