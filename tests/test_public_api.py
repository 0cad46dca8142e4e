"""The public API is small and deliberate: this pins it."""

import trm_otel


def test_public_names() -> None:
    assert sorted(trm_otel.__all__) == [
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
    for name in trm_otel.__all__:
        assert hasattr(trm_otel, name)


def test_processors_public_names() -> None:
    from trm_otel import processors

    assert sorted(processors.__all__) == ["LatencyAggregator", "LatencySpanProcessor", "PercentileMetricReader"]
