"""Arrays as NumPy .npy files: what a client's `Accept` asks for, and the response that sends one in parts.

`Accept: application/x-npy` asks for an array attribute as a .npy file
(`numpy.load(io.BytesIO(body))` reads it; its header says dtype and shape);
JSON stays the answer to every other request.  The experiment process sends
the file as it made it, a small header and then the array's own memory
(core/protocol.py), and the frontend writes those parts one after the other
as the body (large_answers.py, PartsResponse): the array is never copied into
one buffer on the way.
"""

from __future__ import annotations

from labbridge.core.protocol import JSON_ONLY, Format

NPY_MEDIA_TYPE = "application/x-npy"
_JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


def formats_accepted(accept: str | None) -> tuple[Format, ...]:
    """The formats an `Accept` header takes, preferred first: JSON only unless it names application/x-npy."""
    accept = (accept or "").lower()  # media types are case-insensitive
    if NPY_MEDIA_TYPE not in accept:
        return JSON_ONLY
    npy = json = -1.0
    for media_range in accept.split(","):
        kind, _, params = media_range.partition(";")
        quality = _quality(params)
        if kind.strip() == NPY_MEDIA_TYPE:
            npy = max(npy, quality)
        elif kind.strip() in _JSON_RANGES:
            json = max(json, quality)
    # Best first; on a tie .npy, which the client named.
    offered: tuple[tuple[Format, float], ...] = (("npy", npy), ("json", json))
    ranked = sorted((pair for pair in offered if pair[1] > 0), key=lambda pair: -pair[1])
    return tuple(f for f, _ in ranked) or JSON_ONLY  # nothing acceptable: JSON, as for any Accept we cannot meet


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 1.0
    return 1.0

