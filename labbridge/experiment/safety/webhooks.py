"""Webhooks: safety notices POSTed to chat (Slack, Mattermost, Teams incoming webhooks), never blocking anyone.

`Webhooks.send` only puts the notice in a bounded queue (full: dropped and
counted); one background task takes them one by one.  Each message is a JSON
POST of `{"text": "..."}`, the body all three accept, to every URL in
config.yml's `notify.webhooks`, each with a timeout (`notify.timeout`), retried
on a failure (no answer, 429 or 5xx) up to `notify.retries` times with
exponential backoff (0.5 s, 1 s, 2 s ...), never following a redirect (the
notice would go wherever the answer says).  Each URL has its own outbox and
sender, in order, at most `notify.queue` messages waiting (more are dropped for
that URL and counted), so a URL that never answers delays no other.  At most `notify.max_per_minute`
messages leave in any minute: past it notices are counted, not sent, and the
next message that leaves says "and N more"; when notices stop, a last message
summarising them leaves once the minute allows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import aiohttp

from labbridge.core.safety_config import NotifySettings

log = logging.getLogger(__name__)

BACKOFF = 0.5  # seconds before the first retry; doubled for each next one
WINDOW = 60.0  # the rate limit's window, seconds


class Webhooks:
    """A bounded queue of messages and the task that POSTs them to every configured URL."""

    def __init__(self, settings: NotifySettings) -> None:
        self.urls = [str(url) for url in settings.webhooks]
        self.settings = settings
        self._queue: asyncio.Queue[str] = asyncio.Queue(settings.queue)
        self._sent: deque[float] = deque()  # monotonic times of the messages sent in the last WINDOW
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.suppressed = 0  # rate-limited since the last message sent: summarised in the next one
        self.sent = 0  # messages that left (a summary counts as one), to every URL
        self.held_back = 0  # notices the rate limit kept from leaving (in all)
        self.dropped = 0  # lost because the queue was full
        self.failed = 0  # messages a URL never took, all tries done
        self._outboxes: dict[str, asyncio.Queue[str]] = {}  # url -> its messages, in order
        self._senders: list[asyncio.Task[None]] = []

    def send(self, text: str) -> None:
        """Queue one message (never waits); a full queue drops it and counts it."""
        if not self.urls:
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("webhooks: the queue of %d notices is full, dropped: %s", self.settings.queue, text)
            return
        if self._task is None:  # started on the first notice: that needs the running loop
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stats(self) -> dict[str, int]:
        """What became of the notices handed to `send` (for GET /alarms and /metrics)."""
        return {"urls": len(self.urls), "sent": self.sent, "rate_limited": self.held_back, "dropped": self.dropped,
                "failed": self.failed, "queued": self._queue.qsize()}

    async def close(self, grace: float = 0.5) -> None:
        """Send what is queued for up to `grace` seconds, then stop."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(grace):
                await self._queue.join()
                for outbox in self._outboxes.values():
                    await outbox.join()
        except TimeoutError:
            log.warning("webhooks: %d notices not sent before stopping",
                        self._queue.qsize() + sum(outbox.qsize() for outbox in self._outboxes.values()))
        for sender in self._senders:
            sender.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            try:
                text = await self._next()
            except TimeoutError:  # quiet again: what the limit held back is summarised once the minute allows
                self._allowed()  # forgets the messages now out of the window
                await self._post(f"{self.suppressed} more notices were not sent (at most "
                                 f"{self.settings.max_per_minute} a minute); see the audit log")
                self.suppressed = 0
                continue
            try:
                if self._allowed():
                    if self.suppressed:
                        limit = self.settings.max_per_minute
                        text += f" (and {self.suppressed} more, not sent: at most {limit} a minute)"
                        self.suppressed = 0
                    await self._post(text)
                else:
                    self.suppressed += 1
                    self.held_back += 1
            finally:
                self._queue.task_done()

    async def _next(self) -> str:
        """The next queued message; TimeoutError when some were suppressed and the limit now lets one go."""
        if not self.suppressed:
            return await self._queue.get()
        wait = max(0.0, self._sent[0] + WINDOW - time.monotonic()) if self._sent else 0.0
        async with asyncio.timeout(wait):
            return await self._queue.get()

    def _allowed(self) -> bool:
        now = time.monotonic()
        while self._sent and self._sent[0] <= now - WINDOW:
            self._sent.popleft()
        return len(self._sent) < self.settings.max_per_minute

    async def _post(self, text: str) -> None:
        self._sent.append(time.monotonic())
        self.sent += 1
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        if not self._outboxes:  # one sender per URL, in order; started with the first message
            for url in self.urls:
                self._outboxes[url] = asyncio.Queue(self.settings.queue)
                self._senders.append(asyncio.get_running_loop().create_task(self._send_to(self._session, url)))
        for url, outbox in self._outboxes.items():
            try:
                outbox.put_nowait(text)
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning("webhooks: %s has %d notices waiting already, dropped: %s", _shown(url),
                            self.settings.queue, text)

    async def _send_to(self, session: aiohttp.ClientSession, url: str) -> None:
        outbox = self._outboxes[url]
        while True:
            text = await outbox.get()
            try:
                await self._post_to(session, url, text)
            finally:
                outbox.task_done()

    async def _post_to(self, session: aiohttp.ClientSession, url: str, text: str) -> None:
        """POST one message to one URL, retried with exponential backoff; logged if it never gets through."""
        problem = ""
        for attempt in range(self.settings.retries + 1):
            if attempt:
                await asyncio.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                async with session.post(url, json={"text": text}, allow_redirects=False) as answer:
                    if answer.status < 300:
                        return
                    problem = f"HTTP {answer.status}"
                    if answer.status < 500 and answer.status != 429:  # refused for good: a retry changes nothing
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.failed += 1
        log.error("webhooks: %s did not take a notice (%s, after %d tries): %s", _shown(url), problem,
                  attempt + 1, text)


def _shown(url: str) -> str:
    """A webhook URL without its secret path (Slack's and Teams' URLs are their credential)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/..."
