"""trm-otel: OpenTelemetry-native latency percentiles, bottlenecks and trends.

    >>> import trm_otel
    >>> telemetry = trm_otel.configure(service_name="checkout")       # doctest: +SKIP
    >>> telemetry.latency(range="5m")                                  # doctest: +SKIP
    >>> app = trm_otel.instrument_asgi(app)     # Starlette/FastAPI     # doctest: +SKIP

The public API is what this module exports; everything else may change.
"""

from trm_otel._version import __version__
from trm_otel.asgi_instrument import instrument_asgi
from trm_otel.errors import ConfigError, TrmOtelError
from trm_otel.slo import SloPolicy, SloTarget
from trm_otel.telemetry import Telemetry, configure
from trm_otel.views import Bottleneck, LatencyView, Trend, TrendLine

__all__ = [
    "Bottleneck",
    "ConfigError",
    "LatencyView",
    "SloPolicy",
    "SloTarget",
    "Telemetry",
    "Trend",
    "TrendLine",
    "TrmOtelError",
    "__version__",
    "configure",
    "instrument_asgi",
]
