"""Zero-code setup: the ``opentelemetry-instrument`` hooks and ``trm-otel instrument``.

    $ OTEL_SERVICE_NAME=shop OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \\
          trm-otel instrument -- python app.py
    $ opentelemetry-instrument python app.py      # the same, when trm-otel is the only distro

trm-otel registers three entry points, which the standard
``opentelemetry-instrument`` loads in this order:

- ``opentelemetry_distro`` ``trm_otel`` (:class:`TrmOtelDistro`): picks
  trm-otel's configurator too, unless ``OTEL_PYTHON_CONFIGURATOR`` says
  otherwise;
- ``opentelemetry_configurator`` ``trm_otel`` (:class:`TrmOtelConfigurator`):
  calls :func:`trm_otel.configure` with settings read from the standard
  ``OTEL_*`` variables (:func:`settings_from_env`), so the program gets the
  latency span processor, the percentile reader, host metrics and OTLP
  export; the handle is :func:`get_telemetry`;
- ``opentelemetry_instrumentor`` ``trm_otel_starlette``
  (:class:`~trm_otel.asgi_instrument.StarletteInstrumentor`): Starlette and
  FastAPI apps traced with spans named by route template.

With several distros installed, ``opentelemetry-instrument`` takes the first
unless ``OTEL_PYTHON_DISTRO=trm_otel`` (and ``OTEL_PYTHON_CONFIGURATOR``)
choose; ``trm-otel instrument`` sets both. Variables read:

==================================  ==========================================================
``OTEL_SDK_DISABLED``               ``true``: configure nothing
``OTEL_SERVICE_NAME``               ``service.name`` (else ``OTEL_RESOURCE_ATTRIBUTES``' one,
                                    else ``unknown_service``)
``OTEL_RESOURCE_ATTRIBUTES``        more resource attributes, ``key=value,key=value``
``OTEL_TRACES_EXPORTER``            ``otlp`` (default) or ``none``
``OTEL_METRICS_EXPORTER``           ``otlp`` (default) or ``none``; both ``none``: in-process only
``OTEL_EXPORTER_OTLP_ENDPOINT``     default ``http://localhost:4317`` (grpc) or ``:4318``
                                    (http/protobuf); a bare ``host:port`` is plaintext unless
                                    ``OTEL_EXPORTER_OTLP_INSECURE=false``
``OTEL_EXPORTER_OTLP_PROTOCOL``     ``grpc`` (default, as in opentelemetry-distro) or
                                    ``http/protobuf``
``OTEL_EXPORTER_OTLP_HEADERS``,     read by the OTLP exporters themselves
``..._TIMEOUT``, ``..._COMPRESSION``,
``..._CERTIFICATE``
``OTEL_METRIC_EXPORT_INTERVAL``     milliseconds between metric exports (default 60000)
``OTEL_BSP_*``                      read by the batch span processor itself
``TRM_OTEL_WINDOW``                 aggregation window (default ``10s``)
``TRM_OTEL_SLO_P95_MS``             default P95 target in ms
``TRM_OTEL_SYSTEM_METRICS``         ``false``: no host and process instruments
==================================  ==========================================================

A bad value stops the set-up with every problem named by its variable: the
configurator logs them all in one error and the program runs uninstrumented.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from trm_otel.config_types import parse_duration
from trm_otel.errors import ConfigError
from trm_otel.telemetry import Telemetry, configure

__all__ = [
    "ENTRY_POINT_NAME",
    "TrmOtelConfigurator",
    "TrmOtelDistro",
    "configure_from_env",
    "get_telemetry",
    "instrumented_environment",
    "run_instrumented",
    "settings_from_env",
]

_logger = logging.getLogger(__name__)

#: The name of the distro and configurator entry points (``OTEL_PYTHON_DISTRO=trm_otel``).
ENTRY_POINT_NAME = "trm_otel"

_DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
_SIGNAL_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")

_telemetry: Telemetry | None = None


def get_telemetry() -> Telemetry | None:
    """The :class:`~trm_otel.telemetry.Telemetry` auto-instrumentation configured, or ``None``.

    A program run under ``trm-otel instrument`` reads its own percentiles
    with ``trm_otel.distro.get_telemetry().latency()``.
    """
    return _telemetry


def _flag(env: Mapping[str, str], name: str, default: bool, problems: list[tuple[str, str]]) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    problems.append((name, f"expected true or false, got {env[name]!r}"))
    return default


def _exporters(env: Mapping[str, str], name: str, problems: list[tuple[str, str]]) -> bool:
    """Whether ``OTEL_{TRACES,METRICS}_EXPORTER`` asks for OTLP (the default)."""
    names = [n.strip().lower() for n in env.get(name, "otlp").split(",") if n.strip()] or ["otlp"]
    unsupported = [n for n in names if n not in ("otlp", "none")]
    if unsupported:
        listed = ", ".join(map(repr, unsupported))
        problems.append((name, f"unsupported exporter {listed} (trm-otel sends OTLP: use otlp or none)"))
    return "otlp" in names


def _endpoint(env: Mapping[str, str], protocol: str, problems: list[tuple[str, str]]) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` as a URL with a port, the form :func:`configure` takes."""
    raw = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or _DEFAULT_ENDPOINTS[protocol]
    text = raw
    if "://" not in text:
        insecure = env.get("OTEL_EXPORTER_OTLP_INSECURE", "").strip().lower()
        text = f"{'https' if insecure in _FALSE else 'http'}://{text}"
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        problems.append(("OTEL_EXPORTER_OTLP_ENDPOINT", f"not a URL with a valid port: {raw!r}"))
        return text
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(("OTEL_EXPORTER_OTLP_ENDPOINT", f"not host:port or an http(s) URL: {raw!r}"))
        return text
    if port is None:  # the scheme's port, as for any URL
        text = f"{parts.scheme}://{parts.netloc}:{443 if parts.scheme == 'https' else 80}{parts.path}"
    return text.rstrip("/")


def settings_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The :func:`trm_otel.configure` arguments the ``OTEL_*`` variables ask for; ``None`` if the SDK is disabled.

    Besides ``configure``'s own keyword arguments the result has
    ``export_traces`` and ``export_metrics`` (from ``OTEL_TRACES_EXPORTER``
    and ``OTEL_METRICS_EXPORTER``). Raises
    :class:`~trm_otel.errors.ConfigError` naming each bad variable.
    """
    env = os.environ if env is None else env
    problems: list[tuple[str, str]] = []
    if _flag(env, "OTEL_SDK_DISABLED", False, problems):
        return None
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() or "grpc"
    if protocol not in ("grpc", "http/protobuf"):
        hint = " (the Python OTLP exporters do not send JSON)" if protocol == "http/json" else ""
        problems.append(("OTEL_EXPORTER_OTLP_PROTOCOL", f"expected grpc or http/protobuf, got {protocol!r}{hint}"))
        protocol = "grpc"
    export_traces = _exporters(env, "OTEL_TRACES_EXPORTER", problems)
    export_metrics = _exporters(env, "OTEL_METRICS_EXPORTER", problems)
    endpoint = _endpoint(env, protocol, problems) if export_traces or export_metrics else None

    settings: dict[str, Any] = {
        "otlp_endpoint": endpoint,
        "otlp_protocol": protocol,
        "export_traces": export_traces,
        "export_metrics": export_metrics,
        "system_metrics": _flag(env, "TRM_OTEL_SYSTEM_METRICS", True, problems),
    }
    attributes = _resource_attributes(env)
    from_attributes = attributes.pop("service.name", "unknown_service")
    settings["service_name"] = env.get("OTEL_SERVICE_NAME", "").strip() or from_attributes
    if attributes:
        settings["resource_attributes"] = attributes
    interval = env.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    if interval:
        try:
            milliseconds = float(interval)
            if not milliseconds > 0:
                raise ValueError
            settings["metric_export_interval"] = milliseconds / 1000.0
        except ValueError:
            message = f"expected a positive number of milliseconds, got {interval!r}"
            problems.append(("OTEL_METRIC_EXPORT_INTERVAL", message))
    window = env.get("TRM_OTEL_WINDOW", "").strip()
    if window:
        try:
            settings["window"] = parse_duration(window)
        except ValueError as err:
            problems.append(("TRM_OTEL_WINDOW", str(err)))
    p95 = env.get("TRM_OTEL_SLO_P95_MS", "").strip()
    if p95:
        try:
            settings["slo"] = {"default": {"p95_ms": float(p95)}}
        except ValueError:
            problems.append(("TRM_OTEL_SLO_P95_MS", f"expected a number of milliseconds, got {p95!r}"))
    if problems:
        raise ConfigError(problems)
    return settings


def _resource_attributes(env: Mapping[str, str]) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``: ``key=value`` pairs, comma-separated, percent-encoded."""
    out = {}
    for pair in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


def configure_from_env(env: Mapping[str, str] | None = None) -> Telemetry | None:
    """:func:`trm_otel.configure` as the ``OTEL_*`` variables say, installed as the global providers."""
    settings = settings_from_env(env)
    if settings is None:
        _logger.info("OTEL_SDK_DISABLED is true: trm-otel configures nothing")
        return None
    for name in _SIGNAL_ENDPOINTS:
        if (env if env is not None else os.environ).get(name):
            _logger.warning("%s is not used by trm-otel: set OTEL_EXPORTER_OTLP_ENDPOINT instead", name)
    export_traces = settings.pop("export_traces")
    export_metrics = settings.pop("export_metrics")
    if export_traces and export_metrics:
        return configure(**settings)
    # One signal only: configure() exports both or neither, so add the one exporter here.
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from trm_otel.telemetry import _check_endpoint, _otlp_exporters

    endpoint, protocol = settings.pop("otlp_endpoint"), settings["otlp_protocol"]
    exporters = None
    if endpoint is not None:
        _check_endpoint(endpoint)
        exporters = _otlp_exporters(endpoint, protocol)
    if exporters is not None and export_metrics:
        interval_s = float(settings.get("metric_export_interval", 60.0))
        settings["metric_readers"] = [
            PeriodicExportingMetricReader(exporters[1], export_interval_millis=interval_s * 1000)
        ]
    telemetry = configure(**settings)
    if exporters is not None and export_traces:
        telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(exporters[0]))
    return telemetry


class TrmOtelConfigurator(_BaseConfigurator):  # type: ignore[misc]
    """The ``opentelemetry_configurator`` entry point: :func:`configure_from_env`, once per process."""

    def _configure(self, **kwargs: Any) -> None:
        global _telemetry
        if _telemetry is not None:
            return
        try:
            _telemetry = configure_from_env()
        except ConfigError as err:
            # One clear message instead of a traceback; the program runs uninstrumented.
            _logger.error("trm-otel is not configured, fix these environment variables:\n%s", err)
            return
        if _telemetry is not None:
            # Registered after the providers' own exit hooks, so it runs first:
            # spans end and are exported before the metrics are flushed.
            atexit.register(_telemetry.shutdown)


class TrmOtelDistro(BaseDistro):  # type: ignore[misc]
    """The ``opentelemetry_distro`` entry point: selects trm-otel's configurator by default."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", ENTRY_POINT_NAME)


def instrumented_environment(env: Mapping[str, str] | None = None, cwd: str | None = None) -> dict[str, str]:
    """``env`` (default: this process') made to auto-instrument Python with trm-otel.

    As ``opentelemetry-instrument`` does: its ``sitecustomize`` directory
    and the working directory go first on ``PYTHONPATH``; and both
    ``OTEL_PYTHON_DISTRO`` and ``OTEL_PYTHON_CONFIGURATOR`` name trm-otel.
    """
    from opentelemetry.instrumentation import auto_instrumentation

    out = dict(os.environ if env is None else env)
    hook = os.path.dirname(os.path.abspath(auto_instrumentation.__file__))
    cwd = os.getcwd() if cwd is None else cwd
    rest = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p not in (hook, cwd)]
    out["PYTHONPATH"] = os.pathsep.join([hook, cwd, *rest])
    out["OTEL_PYTHON_DISTRO"] = ENTRY_POINT_NAME
    out["OTEL_PYTHON_CONFIGURATOR"] = ENTRY_POINT_NAME
    return out


def run_instrumented(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Replace this process with ``command`` under trm-otel auto-instrumentation.

    Returns (127) only when the command cannot be found or run; otherwise
    the program takes over this process, its pid and its signals.
    """
    if not command:
        print("trm-otel instrument: give the command to run, e.g. trm-otel instrument -- python app.py",
              file=sys.stderr)
        return 2
    executable = shutil.which(command[0])
    if executable is None:
        print(f"trm-otel instrument: command not found: {command[0]}", file=sys.stderr)
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(executable, list(command), instrumented_environment(env))
    except OSError as err:
        print(f"trm-otel instrument: cannot run {command[0]}: {err.strerror or err}", file=sys.stderr)
    return 127
