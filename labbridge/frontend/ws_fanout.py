"""Fan-out of live events to `/ws` clients that subscribed (ws_subscriptions.py): conflated, paced, bounded.

SubscriptionHub indexes subscribed clients by attribute and by module, so a
value costs only the clients that show it, and is serialized once for all of
them.  Each SubscribedClient holds, for its attributes, the latest value not
yet sent (a newer one replaces it: conflation, never a backlog), sends each
attribute at most `max_rate` times a second, and has one send in flight at a
time: a browser that reads slowly gets fewer values, never older ones, and
never holds up the others (each client sends from its own task).

Events that are not values (invocations of actions, runs, failed reads of a
subscribed attribute, any other notice) are never conflated: they are sent in
order, before pending values.  They are bounded too: a client with
MAX_NOTICES of them unsent is too slow to follow the lab, and is dropped
(`overflowed`); its page reconnects and catches up from the latest events.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from labbridge.frontend.ws_subscriptions import Subscription

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (module, attribute)
MAX_NOTICES = 256  # events other than values waiting for one client; far more than a page gets in a second


def is_value(event: dict[str, Any]) -> bool:
    """A value of an attribute (conflated), as opposed to a notice that must arrive (a failed read, an action...)."""
    return "value" in event and "error" not in event and bool(event.get("attribute"))


class SubscribedClient:
    """One subscribed socket's pending values, notices and pacing; `run` sends them, one at a time."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.overflowed = False
        self._loop = asyncio.get_running_loop()
        self._pending: dict[Key, str] = {}  # the latest unsent value per attribute, serialized
        self._due: dict[Key, None] = {}  # pending and allowed now, oldest first
        self._waiting: list[tuple[float, Key]] = []  # pending but sent too recently: (when allowed, key)
        # Pacing per attribute as GCRA (a token bucket of two): a theoretical time for its next send, which
        # may come one interval early, so the sends fall in with the source's phase instead of lagging it.
        self._theoretical: dict[Key, float] = {}
        self._notices: deque[str] = deque()
        self._wake = asyncio.Event()
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0

    def resubscribe(self, subscription: Subscription) -> None:
        """Show other attributes: what is no longer covered is forgotten."""
        self.subscription = subscription
        for key in [k for k in self._pending if not subscription.covers(*k)]:
            self._forget(key)
        self._theoretical = {k: t for k, t in self._theoretical.items() if subscription.covers(*k)}

    def offer_value(self, key: Key, text: str) -> None:
        if key in self._pending:  # already scheduled: the newer value takes its place
            self._pending[key] = text
            return
        self._pending[key] = text
        allowed = self._allowed(key)
        if allowed <= self._loop.time():
            self._due[key] = None
            self._wake.set()
        else:
            heapq.heappush(self._waiting, (allowed, key))
            self._arm(allowed)

    def offer_notice(self, text: str, key: Key | None = None) -> None:
        if key is not None:  # a failed read: the value before it is stale now
            self._forget(key)
        if len(self._notices) >= MAX_NOTICES:
            self.overflowed = True
        else:
            self._notices.append(text)
        self._wake.set()

    async def run(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send notices, then values as their attributes' pace allows; returns once `overflowed`."""
        try:
            while not self.overflowed:
                if self._notices:
                    await send(self._notices.popleft())
                    continue
                now = self._loop.time()
                self._release(now)
                if self._due:
                    key = next(iter(self._due))
                    del self._due[key]
                    text = self._pending.pop(key)
                    self._theoretical[key] = max(self._theoretical.get(key, 0.0), now) + self._interval
                    await send(text)
                    continue
                if self._waiting:
                    self._arm(self._waiting[0][0])
                self._wake.clear()
                await self._wake.wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _release(self, now: float) -> None:
        # Attributes whose pause is over become due; entries left from a forgotten value are skipped.
        while self._waiting and self._waiting[0][0] <= now:
            _, key = heapq.heappop(self._waiting)
            if key in self._pending and self._allowed(key) <= now:
                self._due[key] = None

    @property
    def _interval(self) -> float:
        return 1.0 / self.subscription.max_rate

    def _allowed(self, key: Key) -> float:
        """When `key` may be sent: up to one interval before its theoretical time."""
        return self._theoretical.get(key, 0.0) - self._interval

    def _forget(self, key: Key) -> None:
        self._pending.pop(key, None)
        self._due.pop(key, None)
        if len(self._waiting) > 2 * len(self._pending) + 16:  # entries of forgotten values: never more than that
            self._waiting = [(when, k) for when, k in self._waiting if k in self._pending]
            heapq.heapify(self._waiting)

    def _arm(self, when: float) -> None:
        # Its own note of when: a timer already due is a plain Handle under uvloop, without when().
        if self._timer is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(when, self._ring), when

    def _ring(self) -> None:
        self._timer = None
        self._wake.set()


class SubscriptionHub:
    """The subscribed clients, by attribute and by module; LiveFeed hands it every event."""

    def __init__(self) -> None:
        self._clients: set[SubscribedClient] = set()
        self._by_attribute: dict[Key, set[SubscribedClient]] = {}
        self._by_module: dict[str, set[SubscribedClient]] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def subscribe(self, client: SubscribedClient, subscription: Subscription,
                  latest: Iterable[dict[str, Any]]) -> None:
        """(Re)subscribe `client`, which first gets the latest value of each attribute it now shows."""
        self.remove(client)
        client.resubscribe(subscription)
        self._clients.add(client)
        for key in subscription.attributes:
            self._by_attribute.setdefault(key, set()).add(client)
        for module in subscription.modules:
            self._by_module.setdefault(module, set()).add(client)
        for event in latest:
            attribute = event.get("attribute")
            if attribute and subscription.covers(event["module"], attribute):
                self._offer(client, (event["module"], attribute), event, orjson.dumps(event).decode())

    def remove(self, client: SubscribedClient) -> None:
        if client not in self._clients:
            return
        self._clients.discard(client)
        for key in client.subscription.attributes:
            self._discard(self._by_attribute, key, client)
        for module in client.subscription.modules:
            self._discard(self._by_module, module, client)

    def deliver(self, event: dict[str, Any]) -> None:
        """Hand `event` to every client that shows it (a value) or must see it (anything else)."""
        if not self._clients:
            return
        try:
            self._deliver(event)
        except Exception:  # a fault here must not stop the feed, nor the clients that did not subscribe
            log.exception("live event not handed to subscribed /ws clients: %.200r", event)

    def _deliver(self, event: dict[str, Any]) -> None:
        module, attribute = str(event.get("module")), event.get("attribute")
        # This attribute's state: its subscribers only.  An alarm's change of severity is news for every page
        # (its banner lists every attribute in alarm), never merged away.
        if attribute and ("value" in event or "error" in event) and "alarm" not in event:
            key = (module, str(attribute))
            by_attribute, by_module = self._by_attribute.get(key), self._by_module.get(module)
            clients = (by_attribute | by_module if by_attribute and by_module else by_attribute or by_module)
            if clients:
                text = orjson.dumps(event).decode()
                for client in list(clients):
                    self._offer(client, key, event, text)
            return
        text = orjson.dumps(event).decode()  # anything else is a notice for every subscriber
        for client in list(self._clients):
            self._notify(client, text)

    def _offer(self, client: SubscribedClient, key: Key, event: dict[str, Any], text: str) -> None:
        if is_value(event):
            client.offer_value(key, text)
        else:
            self._notify(client, text, key)

    def _notify(self, client: SubscribedClient, text: str, key: Key | None = None) -> None:
        client.offer_notice(text, key)
        if client.overflowed:
            self.remove(client)  # it is being closed; nothing more is kept for it

    @staticmethod
    def _discard(index: dict[Any, set[SubscribedClient]], key: Any, client: SubscribedClient) -> None:
        clients = index.get(key)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del index[key]
