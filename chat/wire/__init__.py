"""
The front doors: how clients reach the domain (L{chat.avatar}, L{chat.service}).

A front door parses what a client sends into a command, calls the
avatar's action, and writes what the domain tells it back in its own
format.  The line protocol (L{chat.wire.protocol}) is the one there is;
its pieces are L{chat.wire.encoder} (events to lines),
L{chat.wire.direct} (the fast write path), L{chat.wire.telnet},
L{chat.wire.peer} (the client's address, behind a load balancer too) and
L{chat.wire.quiet} (the count of connections that never spoke).
"""
