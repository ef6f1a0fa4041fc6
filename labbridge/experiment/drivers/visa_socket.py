"""The TCP socket under a VISA `TCPIP::host::port::SOCKET` resource: no Nagle delay, a closed peer noticed.

Two things pyvisa-py 0.8's SOCKET session leaves to its user:

- TCP_NODELAY is off, and its `VI_ATTR_TCPIP_NODELAY` refuses to be set.  A checked write is a set
  command and then `SYST:ERR?`: two small writes in a row, the second held back by Nagle's algorithm
  until the instrument ACKs the first, which it delays (about 40 ms) since a set command has no
  answer to carry the ACK.  So the option is set on the socket itself.
- A refused connect opens a session all the same; it is refused here.
- An empty `recv` (the instrument closed the connection: it restarted) is taken for "no data yet",
  and the read spins until its timeout.  The socket is swapped for one whose `recv` raises
  `PeerClosed` instead, so a closed connection is an error at once.

- An answer is read until its line ending, however long: an instrument (or something posing as one)
  that sends without end would fill the experiment process's memory.  The socket counts what it
  received since the last thing sent, and past `MAX_ANSWER_BYTES` raises `AnswerTooLong`.

`peer_closed` tells, without sending anything, whether the instrument closed the connection since the
last exchange: then nothing was sent yet, and the session may reconnect before a read or a write.
"""

from __future__ import annotations

import logging
import os
import select
import socket
from typing import Any

from pyvisa import constants
from pyvisa.resources import TCPIPSocket

log = logging.getLogger(__name__)


class PeerClosed(ConnectionResetError):
    """The instrument closed the connection (its end of the socket read as end-of-file)."""


# The longest answer read from an instrument: 16 MiB holds a trace of a million points in ASCII.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class AnswerTooLong(OSError):
    """The instrument sent more than MAX_ANSWER_BYTES without finishing its answer."""


class _ClosedAwareSocket(socket.socket):
    """A socket whose `recv` raises PeerClosed at end-of-file instead of returning b"" (pyvisa-py reads
    it only after select() says it is readable, so b"" there always means end-of-file), and
    AnswerTooLong past `max_answer` bytes received since the last send."""

    max_answer = MAX_ANSWER_BYTES
    _received = 0

    def send(self, data: Any, flags: int = 0) -> int:
        self._received = 0
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._received = 0
        super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        if not data and bufsize and not flags & socket.MSG_PEEK:
            raise PeerClosed("the instrument closed the connection")
        if not flags & socket.MSG_PEEK:
            self._received += len(data)
            if self._received > self.max_answer:
                raise AnswerTooLong(f"it sent more than {self.max_answer} bytes without ending its answer")
        return data


def tune(resource: Any) -> socket.socket | None:
    """Set TCP_NODELAY on a TCPIP SOCKET resource and, under pyvisa-py, swap in the closed-aware socket
    (OSError if its connect was refused).

    Returns that socket (for `peer_closed`), or None for any other resource or VISA library."""
    if not isinstance(resource, TCPIPSocket):
        return None
    session: Any = getattr(resource.visalib, "sessions", {}).get(resource.session)
    sock = getattr(session, "interface", None)
    if not isinstance(sock, socket.socket):  # a vendor VISA: its own attribute, which it honours
        try:
            resource.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VisaBoolean.true)
        except Exception as exc:  # noqa: BLE001 - a VISA without the attribute: slower writes, still correct
            log.warning("%s: cannot set VI_ATTR_TCPIP_NODELAY (%s); each checked write may wait for an ACK",
                        resource.resource_name, exc)
        return None
    failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if failed:  # pyvisa-py 0.8 takes a refused connect for a made one (its socket is "readable")
        raise OSError(failed, os.strerror(failed))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    aware = _ClosedAwareSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    session.interface = aware
    return aware


def peer_closed(sock: socket.socket) -> bool:
    """True if the instrument closed (or reset) the connection; reads nothing that is waiting."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset by the peer, or a socket already closed
        return True
