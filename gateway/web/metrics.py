"""``/metrics`` and the middleware that counts requests (see :mod:`gateway.metrics`).

``/metrics`` answers only to peers in the configured networks (default: loopback): it reveals traffic patterns.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from typing import Any

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.errors import Forbidden
from gateway.metrics import MULTIPROC_ENV, DatabaseCollector, Metrics

__all__ = ["MetricsMiddleware", "MetricsResource"]

_KNOWN_METHODS = frozenset(falcon.COMBINED_METHODS)


class MetricsMiddleware:
    """Count every request by route template (never the raw path: ids would explode the label space)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # prometheus_client's ``labels()`` validates and looks up its labels on every call (4 µs a request): keep
        # the counter and histogram children of each (method, route, status), which the registry keeps anyway.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "metrics_started", None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        # gunicorn passes any token as a method: unknown ones share one label, or a client could grow the label space.
        method = req.method if req.method in _KNOWN_METHODS else "other"
        key = (method, req.uri_template or "unmatched", resp.status_code)
        children = self._children.get(key)
        if children is None:
            method, route, status = key
            children = self._children[key] = (
                self._metrics.requests.labels(method, route, str(status)),
                self._metrics.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(elapsed)


class MetricsResource:
    """``GET /metrics`` in the Prometheus text format, for peers in ``allowed_networks`` only."""

    def __init__(self, metrics: Metrics, database: DatabaseCollector, allowed_networks: Sequence[str]) -> None:
        self._metrics = metrics
        self._database = database
        self._allowed = tuple(ipaddress.ip_network(net, strict=False) for net in allowed_networks)

    def _peer_allowed(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self._allowed)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self._peer_allowed(req.remote_addr):
            raise Forbidden("metrics are served only to the networks in GATEWAY_METRICS_NETWORKS")
        self._metrics.ensure_series()
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)
        else:
            registry = self._metrics.registry
        body = generate_latest(registry) + generate_latest(_SingleCollectorRegistry(self._database))
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = body


class _SingleCollectorRegistry(CollectorRegistry):
    """A throwaway registry around one collector, so database gauges are read once per scrape."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(auto_describe=False)
        self.register(collector)
