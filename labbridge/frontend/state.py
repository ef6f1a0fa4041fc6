"""FrontendState: what the frontend's routes share, kept on `app.state.bridge`.

One object per app holds the settings, the ZeroMQ clients to the experiment
process(es) (lab.py), token checks, the audit log, the live-value feed, the metrics and the
budget of large answers.  Routes reach it with `bridge_of(request)`, never
through globals, so two apps in one process (as in tests) never share state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from starlette.requests import HTTPConnection

from labbridge.core.audit import AuditLog
from labbridge.core.config import Config, FrontendSettings
from labbridge.core.errors import OpenNetworkRefused
from labbridge.frontend.auth import TokenAuth, may_serve
from labbridge.frontend.lab import Lab
from labbridge.frontend.large_answers import AnswerBudget
from labbridge.frontend.live import LiveFeed
from labbridge.frontend.metrics import BridgeMetrics
from labbridge.frontend.stream_caps import StreamCap


@dataclass
class FrontendState:
    """The frontend's long-lived parts, built once from config.yml."""

    settings: FrontendSettings
    backend: Lab  # the experiment process(es): requests routed to the one they concern (lab.py)
    auth: TokenAuth
    audit: AuditLog | None
    feed: LiveFeed
    metrics: BridgeMetrics
    websockets: StreamCap  # dashboards' live values, each holding a connection
    long_polls: StreamCap  # GET /invocations/<id>?wait=, each holding a connection
    answers: AnswerBudget  # bytes of large answers held until their clients take them
    _network_ok: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, config_file: Path) -> FrontendState:
        settings = config.frontend
        backend = Lab.from_config(config, config_file)
        links = list(backend.links.values())
        feed = LiveFeed(links[0].events_endpoint, links[0].curve, max_event_bytes=links[0].max_reply_bytes)
        for link in links[1:]:  # one subscription per experiment process, into the same fan-out
            feed.add_source(link.events_endpoint, link.curve, link.max_reply_bytes)
        answers = AnswerBudget(settings.max_answer_bytes, settings.max_answer_bytes_per_client,
                               patience=settings.request_timeout)
        metrics = BridgeMetrics(feed)
        metrics.registry.register(answers)
        return cls(
            settings=settings,
            backend=backend,
            auth=TokenAuth.from_settings(settings, config_file),
            audit=AuditLog.from_config(config, config_file),  # for the writes the frontend refuses itself
            feed=feed,
            metrics=metrics,
            websockets=StreamCap(settings.max_websockets, settings),
            long_polls=StreamCap(settings.max_long_polls, settings),
            answers=answers,
        )

    def check_network(self, connection: HTTPConnection) -> None:
        """Refuse a request that reached us on a non-loopback address while no token is configured,
        unless config.yml says the open network is fine."""
        host = (connection.scope.get("server") or ("127.0.0.1", 0))[0]
        if host not in self._network_ok:
            self._network_ok[host] = may_serve(host, self.auth, self.settings.allow_open_network)
        if not self._network_ok[host]:
            raise OpenNetworkRefused(f"no token is configured, so only loopback clients are served (this came in on {host}); "
                                     "configure frontend.token_file or set frontend.allow_open_network")

    def close(self) -> None:
        self.feed.close()
        self.backend.close()
        if self.audit is not None:
            self.audit.close()


def bridge_of(connection: HTTPConnection) -> FrontendState:
    state: FrontendState = connection.app.state.bridge
    return state

