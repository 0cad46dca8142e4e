"""The ``debug`` exporter: what arrived, written to the log, like the Collector's.

    exporters:
      debug: {verbosity: normal}

``basic`` logs one line per request with its counts; ``normal`` one line
per resource (service and item count); ``detailed`` the whole request as
protobuf text. It is for looking at traffic while setting things up, so it
never raises into the pipeline.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from trm_otel.receivers.otlp_slim import full_trace_request

__all__ = ["DebugExporter"]

_logger = logging.getLogger("trm_otel.debug")

Verbosity = Literal["basic", "normal", "detailed"]

_ITEMS = {
    "traces": ("resource_spans", "scope_spans", "spans"),
    "metrics": ("resource_metrics", "scope_metrics", "metrics"),
    "logs": ("resource_logs", "scope_logs", "log_records"),
}


def _service(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return "unknown_service"


class DebugExporter:
    """Logs received OTLP requests at INFO on the ``trm_otel.debug`` logger."""

    def __init__(self, verbosity: Verbosity = "basic", *, name: str = "debug", logger: logging.Logger = _logger) -> None:
        if verbosity not in ("basic", "normal", "detailed"):
            raise ValueError(f"verbosity must be basic, normal or detailed, got {verbosity!r}")
        self.name = name
        self.verbosity = verbosity
        self._logger = logger

    def export(self, signal: Literal["traces", "metrics", "logs"], request: Any) -> None:
        if signal == "traces":
            request = full_trace_request(request)  # the receiver's slim form hides attributes
        resources_field, scopes_field, items_field = _ITEMS[signal]
        per_resource = []
        for resource_items in getattr(request, resources_field):
            n = sum(len(getattr(scope, items_field)) for scope in getattr(resource_items, scopes_field))
            per_resource.append((_service(resource_items.resource), n))
        total = sum(n for _, n in per_resource)
        self._logger.info("%s %s: %d resources, %d %s", self.name, signal, len(per_resource), total, items_field)
        if self.verbosity == "normal":
            for service, n in per_resource:
                self._logger.info("%s %s:   service.name=%s %s=%d", self.name, signal, service, items_field, n)
        elif self.verbosity == "detailed":
            self._logger.info("%s %s request:\n%s", self.name, signal, request)
