"""The distro, the configurator and ``trm-otel instrument``: OTEL_* variables in, ``configure()`` arguments out.

The selection tests install a second distro and configurator the way a
package would (a ``*.dist-info`` with ``entry_points.txt`` on the path) and
run the real ``opentelemetry-instrument`` and ``trm-otel instrument``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from trm_otel.asgi_instrument import StarletteInstrumentor
from trm_otel.distro import (
    TrmOtelConfigurator,
    TrmOtelDistro,
    instrumented_environment,
    settings_from_env,
)
from trm_otel.errors import ConfigError

from .e2e.daemon_process import trm_otel_command


def test_the_entry_points_are_registered() -> None:
    found = {
        group: {e.name: e.load() for e in entry_points(group=group)}
        for group in ("opentelemetry_distro", "opentelemetry_configurator", "opentelemetry_instrumentor")
    }
    assert found["opentelemetry_distro"]["trm_otel"] is TrmOtelDistro
    assert found["opentelemetry_configurator"]["trm_otel"] is TrmOtelConfigurator
    assert found["opentelemetry_instrumentor"]["trm_otel_starlette"] is StarletteInstrumentor


# ----------------------------------------------------------- settings_from_env


def test_defaults_follow_the_python_sdk() -> None:
    assert settings_from_env({}) == {
        "service_name": "unknown_service",
        "otlp_endpoint": "http://localhost:4317",
        "otlp_protocol": "grpc",
        "export_traces": True,
        "export_metrics": True,
        "system_metrics": True,
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OTEL_SERVICE_NAME": "shop"}, {"service_name": "shop"}),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=cart,deployment.environment=prod,team=a%20b"},
            {"service_name": "cart", "resource_attributes": {"deployment.environment": "prod", "team": "a b"}},
        ),
        (
            {"OTEL_SERVICE_NAME": "shop", "OTEL_RESOURCE_ATTRIBUTES": "service.name=cart"},
            {"service_name": "shop"},
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         {"otlp_protocol": "http/protobuf", "otlp_endpoint": "http://localhost:4318"}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, {"otlp_endpoint": "http://collector:4317"}),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE": "false"},
            {"otlp_endpoint": "https://collector:4317"},
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com/"}, {"otlp_endpoint": "https://otlp.example.com:443"}),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
         {"otlp_endpoint": None, "export_traces": False, "export_metrics": False}),
        ({"OTEL_METRICS_EXPORTER": "none"}, {"export_metrics": False}),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "500"}, {"metric_export_interval": 0.5}),
        ({"TRM_OTEL_WINDOW": "1s", "TRM_OTEL_SLO_P95_MS": "250", "TRM_OTEL_SYSTEM_METRICS": "false"},
         {"window": 1.0, "slo": {"default": {"p95_ms": 250.0}}, "system_metrics": False}),
    ],
    ids=[
        "service-name", "resource-attributes", "service-name-wins", "http-protobuf", "bare-host-port",
        "insecure-false", "https-default-port", "no-export", "traces-only", "export-interval", "trm-variables",
    ],
)
def test_standard_variables(env: dict[str, str], expected: dict[str, object]) -> None:
    settings = settings_from_env(env)
    assert settings is not None
    assert {k: settings.get(k) for k in expected} == expected


def test_sdk_disabled_configures_nothing() -> None:
    assert settings_from_env({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_PROTOCOL": "nonsense"}) is None


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env(
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                "OTEL_TRACES_EXPORTER": "zipkin",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:21",
                "OTEL_METRIC_EXPORT_INTERVAL": "soon",
                "TRM_OTEL_WINDOW": "10 parsecs",
                "TRM_OTEL_SYSTEM_METRICS": "maybe",
            }
        )
    assert str(caught.value).splitlines() == [
        "OTEL_EXPORTER_OTLP_PROTOCOL: expected grpc or http/protobuf, got 'http/json'"
        " (the Python OTLP exporters do not send JSON)",
        "OTEL_TRACES_EXPORTER: unsupported exporter 'zipkin' (trm-otel sends OTLP: use otlp or none)",
        "OTEL_EXPORTER_OTLP_ENDPOINT: not host:port or an http(s) URL: 'ftp://collector:21'",
        "TRM_OTEL_SYSTEM_METRICS: expected true or false, got 'maybe'",
        "OTEL_METRIC_EXPORT_INTERVAL: expected a positive number of milliseconds, got 'soon'",
        "TRM_OTEL_WINDOW: not a duration: '10 parsecs' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)",
    ]


def test_instrumented_environment_puts_the_hook_first(tmp_path: Path) -> None:
    from opentelemetry.instrumentation import auto_instrumentation

    hook = str(Path(auto_instrumentation.__file__).parent)
    env = instrumented_environment({"PYTHONPATH": f"/x{os.pathsep}{hook}", "OTEL_PYTHON_DISTRO": "other"}, cwd=str(tmp_path))
    assert env["PYTHONPATH"].split(os.pathsep) == [hook, str(tmp_path), "/x"]
    assert (env["OTEL_PYTHON_DISTRO"], env["OTEL_PYTHON_CONFIGURATOR"]) == ("trm_otel", "trm_otel")


# ----------------------------------------------- several distros installed

OTHER_DISTRO = textwrap.dedent(
    """
    from opentelemetry.instrumentation.distro import BaseDistro
    from opentelemetry.sdk._configuration import _BaseConfigurator


    class OtherDistro(BaseDistro):
        def _configure(self, **kwargs):
            print("other distro")


    class OtherConfigurator(_BaseConfigurator):
        def _configure(self, **kwargs):
            print("other configurator")
    """
)

REPORT = (
    "import trm_otel.distro as d; t = d.get_telemetry(); "
    "print('trm-otel configured' if t else 'trm-otel not configured', t and t.tracer_provider.resource.attributes['service.name'])"
)


@pytest.fixture
def other_distro(tmp_path: Path) -> Path:
    """A second distro and configurator, installed first on the path (so found first)."""
    (tmp_path / "other_distro.py").write_text(OTHER_DISTRO)
    info = tmp_path / "other_distro-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-distro\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_distro]\nother = other_distro:OtherDistro\n\n"
        "[opentelemetry_configurator]\nother = other_distro:OtherConfigurator\n"
    )
    return tmp_path


def _run(command: list[str], path: Path, **env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRM_OTEL_"))}
    full = {
        **base,
        "PYTHONPATH": str(path),
        "OTEL_SERVICE_NAME": "picked",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "TRM_OTEL_SYSTEM_METRICS": "false",
        **env,
    }
    out = subprocess.run(command, env=full, cwd=path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def _instrument() -> list[str]:
    return [str(Path(sys.executable).with_name("opentelemetry-instrument"))]


def test_without_a_choice_the_first_distro_wins(other_distro: Path) -> None:
    lines = _run([*_instrument(), sys.executable, "-c", REPORT], other_distro)
    assert lines == ["other distro", "other configurator", "trm-otel not configured None"]


def test_otel_python_distro_selects_trm_otel_and_its_configurator(other_distro: Path) -> None:
    lines = _run([*_instrument(), sys.executable, "-c", REPORT], other_distro, OTEL_PYTHON_DISTRO="trm_otel")
    assert lines == ["trm-otel configured picked"]


def test_otel_python_configurator_can_pick_another_configurator(other_distro: Path) -> None:
    lines = _run(
        [*_instrument(), sys.executable, "-c", REPORT],
        other_distro,
        OTEL_PYTHON_DISTRO="trm_otel",
        OTEL_PYTHON_CONFIGURATOR="other",
    )
    assert lines == ["other configurator", "trm-otel not configured None"]


def test_trm_otel_instrument_selects_trm_otel_and_passes_the_arguments(other_distro: Path) -> None:
    script = f"import sys; print(sys.argv[1:]); {REPORT}"
    command = [*trm_otel_command(), "instrument", "--service-name", "from-flag", "--", sys.executable, "-c", script,
               "a", "--b"]
    assert _run(command, other_distro) == ["['a', '--b']", "trm-otel configured from-flag"]


def test_a_bad_variable_is_one_clear_error_and_the_program_still_runs(tmp_path: Path) -> None:
    command = [*trm_otel_command(), "instrument", "--", sys.executable, "-c", REPORT]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRM_OTEL_"))}
    out = subprocess.run(
        command, env={**base, "OTEL_EXPORTER_OTLP_PROTOCOL": "udp", "TRM_OTEL_SYSTEM_METRICS": "false"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0
    assert out.stdout == "trm-otel not configured None\n"
    assert out.stderr == (
        "trm-otel is not configured, fix these environment variables:\n"
        "OTEL_EXPORTER_OTLP_PROTOCOL: expected grpc or http/protobuf, got 'udp'\n"
    )


def test_traces_without_metrics_exports_only_traces(tmp_path: Path) -> None:
    """``OTEL_METRICS_EXPORTER=none``: spans reach the OTLP server, no metrics do."""
    from .otlp_sink import OtlpSink

    script = (
        "from trm_otel.distro import configure_from_env\n"
        "t = configure_from_env()\n"
        "t.tracer_provider.get_tracer('x').start_span('GET /a').end()\n"
        "t.shutdown()\n"
    )
    with OtlpSink() as sink:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRM_OTEL_"))}
        env = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_METRICS_EXPORTER": "none",
               "OTEL_SERVICE_NAME": "only-traces", "TRM_OTEL_SYSTEM_METRICS": "false"}
        out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        names = [s.name for r in sink.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert names == ["GET /a"]
        assert sink.metrics == []
