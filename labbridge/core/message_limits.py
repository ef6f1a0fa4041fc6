"""How large a ZeroMQ message may be, on every socket of the hop (ZMQ_MAXMSGSIZE).

libzmq allocates a message as soon as its size has arrived and then fills it as
the bytes come in, during a CurveZMQ handshake too; without a limit, any peer
that can connect makes a process hold as much memory as it cares to send.  Over
a socket's limit, libzmq drops that peer's connection instead.  Each side also
checks what it sends, so a legitimate message that is too large becomes a clear
error rather than a dropped connection.

- requests, frontend -> experiment: a PUT's body is at most
  `frontend.max_body_bytes`; re-encoded for the hop a number can grow (a
  client's `1e15,` is orjson's `1000000000000000.0,`, 3.8 times longer), so
  four times that plus an envelope.
- replies and live values, experiment -> frontend: arrays can be large (a trace
  of 100,000 floats is 1 MB of JSON, a camera frame several), so a generous but
  finite `experiment_socket.max_reply_bytes`, 64 MiB by default.
- subscriptions, frontend -> experiment's events socket: one byte is all the
  frontend sends (subscribe to everything; see experiment/events.py), but the
  CurveZMQ handshake on that socket needs a few hundred.
"""

from __future__ import annotations

from typing import Any

import zmq

from labbridge.core.config import Config

REQUEST_ENVELOPE = 64 * 1024  # id, op, names, deadline around the value
NUMBER_GROWTH = 4  # the most a JSON value grows when orjson writes it again
# A subscription is one byte, but the limit also bounds the handshake, whose CurveZMQ INITIATE
# command (keys, a vouch, the socket's metadata) is a few hundred bytes.
SUBSCRIPTION_BYTES = 4096


def max_request_bytes(config: Config) -> int:
    """The largest request the experiment process accepts."""
    return NUMBER_GROWTH * config.frontend.max_body_bytes + REQUEST_ENVELOPE


def max_reply_bytes(config: Config) -> int:
    """The largest reply or live value the frontend accepts."""
    return config.experiment_socket.max_reply_bytes


def limit_incoming(sock: zmq.Socket[Any], max_bytes: int) -> None:
    """Drop the connection of a peer that sends a message over `max_bytes` (set before bind or connect)."""
    sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
