"""A low-overhead HTTP/1.1 load generator on asyncio, used when wrk is not installed.

    python bench/loadgen.py http://127.0.0.1:8000/setpoint/value -c 32 -d 5 [--method PUT --body '{"value": 1}']
                            [--header "Accept: application/x-npy"]

Each of `-c` connections sends requests back to back over keep-alive and
records each latency.  Prints one JSON line: requests, errors (non-2xx or
broken connections), requests/s, p50 and p99 latency in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _connection(host: str, port: int, request: bytes, until: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head[9:10] == b"2":
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()


async def run(url: str, connections: int, duration: float, method: str, body: bytes,
              headers: list[str] | None = None) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{header}\r\n" for header in headers or [])
    request = (f"{method} {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors = [0]
    start = time.perf_counter()
    until = start + duration
    await asyncio.gather(*(_connection(host, port, request, until, latencies, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"requests": len(latencies), "errors": errors[0], "rps": len(latencies) / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description="asyncio HTTP load generator")
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--header", action="append", default=[], help='an extra header, "Name: value"')
    args = parser.parse_args()
    try:
        import uvloop  # a faster loop keeps the generator's own overhead down
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.connections, args.duration, args.method, args.body.encode(), args.header))
    print(json.dumps(result))  # noqa: T201 - this script's output is its result


if __name__ == "__main__":
    main()
