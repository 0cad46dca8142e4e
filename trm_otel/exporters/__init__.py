"""Exporters: where the daemon sends what it received and what it computed.

``otlp`` forwards OTLP requests and the aggregated spanmetrics upstream
through a bounded retry queue; ``debug`` logs what arrived.
"""

from trm_otel.exporters.debug import DebugExporter
from trm_otel.exporters.otlp import ForwarderStats, OtlpForwarder, RetryPolicy

__all__ = ["DebugExporter", "ForwarderStats", "OtlpForwarder", "RetryPolicy"]
