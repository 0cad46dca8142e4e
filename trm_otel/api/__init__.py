"""The daemon's HTTP API: JSON views under ``/api/v1``, probes and ``/metrics``.

    >>> from trm_otel.api import ApiContext, Sample, build_api_app
    >>> app = build_api_app(context)                                   # doctest: +SKIP

Only the app factory, its context and the self-metric sample are public;
routing, parameter checks and the exposition format live in the modules
behind them (``app``, ``params``, ``responses``, ``services``,
``prometheus``, ``scrape``).
"""

from trm_otel.api.app import ApiContext, build_api_app
from trm_otel.api.prometheus import Sample

__all__ = ["ApiContext", "Sample", "build_api_app"]
