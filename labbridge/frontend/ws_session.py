"""LiveSession: one `/ws` connection, from every event (as it opens) to a subscription if the client sends one.

Until the client subscribes, it gets every event from LiveFeed's queue, one
message per value, as always (the Python client's `watch()` never subscribes).
Its first valid subscription (ws_subscriptions.py) moves it to the
SubscriptionHub (ws_fanout.py): its queue leaves the feed, the notices still in
it are carried over, and it gets the latest value of each attribute it shows,
then those attributes at its pace.  Each subscription is acknowledged with
`{"subscribed": [...], "max_rate": ...}`; a bad one is answered with
`{"error": "malformed_request", "message": ...}` and changes nothing.

Whatever the mode, one task sends (one message in flight), and the task that
reads the socket only parses what the client says, so a slow reader costs its
own task's wait and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect

from labbridge.core.errors import MalformedRequest
from labbridge.frontend.live import LiveFeed
from labbridge.frontend.ws_fanout import MAX_NOTICES, SubscribedClient, is_value
from labbridge.frontend.ws_subscriptions import parse_subscription

log = logging.getLogger(__name__)

TOO_SLOW = 1013  # "try again later": the page reconnects and catches up from the latest events
CLOSE_PATIENCE = 1.0  # seconds to send the close of a client dropped as too slow; it may not read that either


class LiveSession:
    """What one `/ws` connection gets: every event, or what it subscribed to."""

    def __init__(self, websocket: WebSocket, feed: LiveFeed, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.websocket, self.feed, self.queue = websocket, feed, queue
        self.client: SubscribedClient | None = None
        self._sender = asyncio.create_task(self._send_every_event())

    async def run(self) -> None:
        """Read what the client sends until it goes away (reading also frees each message taken in)."""
        try:
            while True:
                try:
                    message = await self.websocket.receive()
                except (WebSocketDisconnect, RuntimeError):  # closed by us (a client too slow), then gone
                    return
                if message["type"] == "websocket.disconnect":
                    return
                await self._take(message.get("text") or message.get("bytes") or b"")
        finally:
            await self._stop_sending()
            if self.client is not None:
                self.feed.hub.remove(self.client)

    async def _take(self, message: str | bytes) -> None:
        try:
            subscription = parse_subscription(message)
        except MalformedRequest as exc:
            self._reply({"error": exc.code, "message": exc.detail})
            return
        if self.client is None:  # from every event to this subscription
            await self._stop_sending()
            self.feed.leave(self.queue)
            self.client = SubscribedClient(subscription)
            self._reply(subscription.acknowledgement())
            while not self.queue.empty():  # notices not sent yet still must be; values come from `latest`
                event = self.queue.get_nowait()
                if not is_value(event) and event.get("module") is not None:
                    self.client.offer_notice(orjson.dumps(event).decode())
            self._sender = asyncio.create_task(self._send_subscribed(self.client))
        else:
            self._reply(subscription.acknowledgement())
        self.feed.hub.subscribe(self.client, subscription, list(self.feed.latest.values()))

    def _reply(self, answer: dict[str, Any]) -> None:
        """An answer to the client, in line with what its sender sends."""
        if self.client is not None:
            self.client.offer_notice(orjson.dumps(answer).decode())
            return
        if self.queue.full():
            self.queue.get_nowait()  # as LiveFeed does for a slow reader: the oldest goes
        self.queue.put_nowait(answer)

    async def _send_every_event(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the page went away while a value was on its way
            while True:
                await self.websocket.send_text(orjson.dumps(await self.queue.get()).decode())

    async def _send_subscribed(self, client: SubscribedClient) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await client.run(self.websocket.send_text)
            log.info("a /ws client left %d notices unread; closing it so that it reconnects", MAX_NOTICES)
            self.feed.hub.remove(client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.websocket.close(TOO_SLOW, "too slow: reconnect to catch up"),
                                       CLOSE_PATIENCE)

    async def _stop_sending(self) -> None:
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
