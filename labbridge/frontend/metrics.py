"""BridgeMetrics: what `GET /metrics` exports, in the Prometheus text format (prometheus_client).

- `bridge_attribute_value{module, attribute, unit}`: the latest value of every
  numeric attribute polled or written, from the live feed (live.py), and
  `bridge_attribute_updated_timestamp_seconds` saying when it was read;
- `bridge_http_request_duration_seconds{method, route, module, status}`: a
  histogram of every HTTP request (its `_count` is the request count), filled
  by RequestMetrics (request_metrics.py);
- from a ping of the experiment process at scrape time: `bridge_backend_up`,
  `bridge_backend_rtt_seconds`, per module `bridge_module_queue_length`,
  `bridge_module_last_contact_timestamp_seconds` and `bridge_module_up` (0
  after a failed instrument call), and `bridge_history_recording`;
- from `GET /alarms` at scrape time: `bridge_alarm_severity{module, attribute}`
  of every attribute with alarm limits (0 ok, 1 minor, 2 major, 3 invalid),
  and, with webhooks, `bridge_webhook_messages_total{outcome}`.

Labels come from config.yml's names and the route templates, never from raw
request paths, so a client probing random URLs cannot grow the series without bound.
Each app has its own registry: two apps in one process never share counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from labbridge.frontend.live import LiveFeed

SEVERITIES = ("ok", "minor", "major", "invalid")  # an alarm's severity, exported as its index

# Seconds; the bridge answers in about a millisecond, a slow instrument in seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
UNKNOWN = "(unknown)"  # the module label of a request for a module the bridge does not know (no module is named so)

# A `_created` series per histogram series doubles what is scraped and tells Prometheus nothing it needs.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Latency:
    """Durations of the requests of one label set: a count per bucket and their sum.

    Plain integers, since only the event loop's thread counts; prometheus_client gets
    them as a histogram at scrape time.  That costs a fifth of its Histogram.observe,
    which takes a lock per bucket.
    """

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


class BridgeMetrics:
    """The frontend's Prometheus registry: request latencies, live values and the backend's health."""

    def __init__(self, feed: LiveFeed) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latencies: dict[tuple[str, str, str, str], Latency] = {}  # (method, route, module, status)
        self._series: dict[tuple[str, str, str, int], Latency] = {}  # the same, keyed as observed
        self._lab = _LabCollector(feed, self.latencies)
        self.registry.register(self._lab)
        self.known_modules: set[str] = set()  # module labels allowed: configured modules seen in answers

    def observe(self, method: str, route: str, module: str, status: int, seconds: float) -> None:
        """Count one request (on the hot path: a dict lookup, a bisect and two additions)."""
        key = (method, route, module, status)
        series = self._series.get(key)
        if series is None:
            if module and module not in self.known_modules:
                if 200 <= status < 300:  # only an existing module answers with success
                    self.known_modules.add(module)
                else:
                    module = UNKNOWN
            labels = (method if method in METHODS else "other", route, module, str(status))
            series = self.latencies.setdefault(labels, Latency())
            if module != UNKNOWN:  # an unknown name may become known later; keep looking it up until then
                self._series[key] = series
        series.observe(seconds)

    def render(self, ping: dict[str, Any] | None, alarms: dict[str, Any] | None = None) -> bytes:
        """The text exposition, with the backend's state as `ping` found it (None: not reachable) and its
        alarms and webhooks (the answer to GET /alarms)."""
        if ping is not None:
            self.known_modules.update(ping["modules"])
        self._lab.ping, self._lab.alarms = ping, alarms or {}
        return generate_latest(self.registry)


class _LabCollector:
    """Collected at scrape time from the live feed's latest values and the last ping."""

    def __init__(self, feed: LiveFeed, latencies: dict[tuple[str, str, str, str], Latency]) -> None:
        self.feed = feed
        self.latencies = latencies
        self.ping: dict[str, Any] | None = None
        self.alarms: dict[str, Any] = {}  # the answer to GET /alarms

    def collect(self) -> Iterator[Metric]:
        requests = HistogramMetricFamily("bridge_http_request_duration_seconds", "HTTP requests served, by route template",
                                         labels=["method", "route", "module", "status"])
        bounds = [*map(str, BUCKETS), "+Inf"]
        for labels, latency in list(self.latencies.items()):
            requests.add_metric(list(labels), list(zip(bounds, accumulate(latency.counts))), latency.total)
        yield requests
        value = GaugeMetricFamily("bridge_attribute_value", "Latest value of a numeric attribute, polled or written",
                                  labels=["module", "attribute", "unit"])
        updated = GaugeMetricFamily("bridge_attribute_updated_timestamp_seconds",
                                    "Unix time the experiment process read or wrote that value",
                                    labels=["module", "attribute"])
        for (module, attribute), event in list(self.feed.latest.items()):
            reading = event.get("value")
            if isinstance(reading, (int, float)) and not isinstance(reading, bool):
                value.add_metric([module, attribute, event.get("unit") or ""], reading)
                if isinstance(event.get("time"), (int, float)):
                    updated.add_metric([module, attribute], event["time"])
        yield value
        yield updated
        if self.alarms.get("alarms"):
            yield _alarm_metric(self.alarms["alarms"])
        if self.alarms.get("webhooks", {}).get("urls"):
            yield _webhook_metric(self.alarms["webhooks"])
        yield GaugeMetricFamily("bridge_backend_up", "1 when the experiment process answers", float(self.ping is not None))
        if self.ping is None:
            return
        yield GaugeMetricFamily("bridge_backend_rtt_seconds", "Round trip of a ping to the experiment process",
                                self.ping["rtt_ms"] / 1000)
        yield from _module_metrics(self.ping["modules"])
        if self.ping.get("experiments"):  # a lab of several PCs (config `experiments:`)
            up = GaugeMetricFamily("bridge_experiment_up", "1 while the experiment process (a lab PC) is served",
                                   labels=["experiment"])
            for name, state in self.ping["experiments"].items():
                up.add_metric([name], float(state["up"]))
            yield up
        history = self.ping.get("history") or {}
        if history.get("enabled"):
            yield GaugeMetricFamily("bridge_history_recording", "1 while values are being recorded",
                                    float(history["recording"]))
            yield CounterMetricFamily("bridge_history_dropped_values", "Values lost because recording failed too long",
                                      history["dropped"])


def _alarm_metric(alarms: list[dict[str, Any]]) -> Metric:
    severity = GaugeMetricFamily("bridge_alarm_severity", "Alarm severity of an attribute with limits: "
                                 "0 ok, 1 minor, 2 major, 3 invalid (its read failed)", labels=["module", "attribute"])
    for alarm in alarms:
        severity.add_metric([alarm["module"], alarm["attribute"]], float(SEVERITIES.index(alarm["severity"])))
    return severity


def _webhook_metric(counts: dict[str, int]) -> Metric:
    messages = CounterMetricFamily("bridge_webhook_messages", "Safety notices for webhooks, by what became of "
                                   "them: sent, rate_limited, dropped (queue full), failed (a URL never took it)",
                                   labels=["outcome"])
    for outcome in ("sent", "rate_limited", "dropped", "failed"):
        messages.add_metric([outcome], counts[outcome])
    return messages


def _module_metrics(modules: dict[str, Any]) -> Iterator[Metric]:
    queue = GaugeMetricFamily("bridge_module_queue_length", "Requests running or waiting for the module",
                              labels=["module"])
    contact = GaugeMetricFamily("bridge_module_last_contact_timestamp_seconds",
                                "Unix time the instrument last answered", labels=["module"])
    up = GaugeMetricFamily("bridge_module_up", "0 when the module's last instrument call failed", labels=["module"])
    for name, state in modules.items():
        queue.add_metric([name], state["queued"])
        up.add_metric([name], float(state["last_error"] is None))
        if state["last_contact"] is not None:
            contact.add_metric([name], state["last_contact"])
    yield from (queue, contact, up)
