"""Whether the client of a request is still there, without reading what it sent.

A request may wait long before anything is written to its client (a follower of the logs, a long
prompt waiting its turn); a client that went away meanwhile should cost nothing more.
"""

import select
import socket


def client_gone(req):
    """True when the client of this (gunicorn) request closed its connection."""
    sock = req.env.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
