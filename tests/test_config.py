"""The daemon's collector-shaped config: fixtures, exact messages, defaults and helpers.

Like the Collector's ``testdata``: every ``config_testdata/invalid_*.yaml``
is paired below with the exact lines ``trm-otel check-config`` prints for it
(``file:line:col: key.path: message``), and every ``valid_*.yaml`` with what
it must load to.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from trm_otel import config as config_module
from trm_otel.config import (
    DaemonConfig,
    DebugExporterConfig,
    LatencyProcessorConfig,
    OtlpExporterConfig,
    OtlpReceiverConfig,
    PipelineConfig,
    check_config,
    component_type,
    host_port,
    load_config,
    parse_config,
)
from trm_otel.errors import ConfigError

from .alerting.notifiers.servers import make_tls_files

TESTDATA = Path(__file__).parent / "config_testdata"
DAEMON_CONFIGS = Path(__file__).resolve().parents[1] / "otel-config" / "daemon"

NOT_LOOPBACK = (
    "is not a loopback address and no auth.tokens are configured; add auth.tokens, or set 'insecure: true' at the top level"
    " to serve it without auth"
)

# file -> the exact problem lines after "<file>:"
INVALID: dict[str, list[str]] = {
    "invalid_protocol_typo.yaml": [
        "6:7: receivers.otlp.protocols.htttp: unknown key (did you mean 'http'?)",
    ],
    "invalid_endpoints.yaml": [
        "5:9: receivers.otlp.protocols.grpc.endpoint: not host:port: 'localhost'",
        "7:9: receivers.otlp.protocols.http.endpoint: not host:port: '127.0.0.1:70000' (port must be 0..65535)",
        "10:14: receivers.otlp/v6.protocols.grpc.endpoint: not host:port: '::1:4317'"
        " (write an IPv6 address in brackets: [::1]:4317)",
        "11:14: receivers.otlp/v6.protocols.http.endpoint: not host:port: 'http://127.0.0.1:4318' (leave out the scheme)",
        "14:14: receivers.otlp/nohost.protocols.grpc.endpoint: not host:port: ':4317' (give a host, e.g. 127.0.0.1:4317)",
        "15:14: receivers.otlp/nohost.protocols.http.endpoint: not host:port: 4318",
        "17:3: api.endpoint: not host:port: '[nope]:8080' (not an IPv6 address in the brackets)",
        "20:5: exporters.otlp.endpoint: not host:port or an http(s) URL: 'ftp://collector:4317'",
        "22:5: exporters.otlp/bad_port.endpoint: not host:port or an http(s) URL: 'https://collector:99999'"
        " (port must be 0..65535)",
    ],
    "invalid_component_ids.yaml": [
        "2:3: receivers.otlpp: unknown receiver type 'otlpp' (did you mean 'otlp'?)",
        "3:3: receivers.jaeger: unknown receiver type 'jaeger' (known: hostmetrics, otlp)",
        "4:3: receivers.otlp/: invalid receiver id 'otlp/' (use 'type' or 'type/name')",
        "5:3: receivers.otlp/with space: invalid receiver id 'otlp/with space' (use 'type' or 'type/name')",
        "7:3: processors.batch: unknown processor type 'batch' (known: latency)",
        "8:3: processors.latncy: unknown processor type 'latncy' (did you mean 'latency'?)",
        "10:3: exporters.otlphttp: unknown exporter type 'otlphttp' (did you mean 'otlp'?)",
        "11:3: exporters.logging: unknown exporter type 'logging' (known: debug, otlp)",
    ],
    "invalid_pipelines.yaml": [
        "9:25: service.pipelines.traces.receivers[1]: receiver 'otlp' is listed twice",
        "10:29: service.pipelines.traces.processors[1]: unknown processor 'batch' (configured: latency)",
        "11:19: service.pipelines.traces.exporters[0]: unknown exporter 'otlp/upsteam'"
        " (configured: otlp/upstream, debug; did you mean 'otlp/upstream'?)",
        "12:5: service.pipelines.metrics.receivers: a pipeline needs at least one receiver",
        "15:19: service.pipelines.logs.receivers[0]: unknown receiver 'otlp/logs' (configured: otlp; did you mean 'otlp'?)",
        "16:19: service.pipelines.logs.exporters[0]: unknown exporter 'kafka' (configured: otlp/upstream, debug)",
        "17:5: service.pipelines.trace: unknown pipeline type 'trace' (did you mean 'traces'?)",
        "19:5: service.pipelines.traces/: invalid pipeline id 'traces/' (use 'type' or 'type/name')",
        "22:7: service.pipelines.logs/x.receivers: expected a list of receiver ids, e.g. [otlp]",
        "23:7: service.pipelines.logs/x.exporters: expected a list of exporter ids",
    ],
    "invalid_no_pipelines.yaml": [
        "2:3: service.pipelines: no pipelines (leave pipelines out to wire every receiver through the latency processor)",
    ],
    "invalid_later_sections.yaml": [
        "2:1: recievers: unknown key (did you mean 'receivers'?)",
        "6:56: auth.tokens[0].role: Input should be 'ingest', 'viewer', 'editor' or 'admin'",
        "8:3: alerting.evaluation_intervall: unknown key (did you mean 'evaluation_interval'?)",
        "10:3: dashboards.provison: unknown key (did you mean 'provision'?)",
    ],
    "invalid_env.yaml": [
        "5:9: receivers.otlp.protocols.grpc.endpoint: environment variable TRM_TEST_MISSING_HOST is not set"
        " (set it, or write ${env:TRM_TEST_MISSING_HOST:-default})",
        "8:5: exporters.otlp.endpoint: environment variable TRM_TEST_MISSING_ENDPOINT is not set"
        " (set it, or write ${env:TRM_TEST_MISSING_ENDPOINT:-default})",
        "10:7: exporters.otlp.headers.authorization: unsupported substitution '${TRM_TEST_TOKEN}'"
        " (did you mean '${env:TRM_TEST_TOKEN}'?)",
        "11:7: exporters.otlp.headers.x-other: unsupported substitution '${file:/etc/token}'"
        " (use ${env:VAR} or ${env:VAR:-default})",
        "12:7: exporters.otlp.headers.x-broken: unterminated '${' in '${env:TRM_TEST_TOKEN'"
        " (write '$${' for a literal '${')",
        "14:3: storage.path: environment variable TRM_TEST_MISSING_DIR is not set"
        " (set it, or write ${env:TRM_TEST_MISSING_DIR:-default})",
    ],
    "invalid_exposed.yaml": [
        f"5:14: receivers.otlp.protocols.grpc.endpoint: '0.0.0.0:4317' {NOT_LOOPBACK}",
        f"6:14: receivers.otlp.protocols.http.endpoint: 'my-host:4318' {NOT_LOOPBACK}",
        f"11:3: api.endpoint: '[::]:8080' {NOT_LOOPBACK}",
    ],
    "invalid_port_conflict.yaml": [
        "3:3: receivers.otlp/second.protocols.grpc.endpoint: '127.0.0.1:4317' is already used by receiver 'otlp' (grpc)",
        "3:3: receivers.otlp/second.protocols.http.endpoint: '127.0.0.1:4318' is already used by receiver 'otlp' (http)",
        "6:14: receivers.otlp/third.protocols.http.endpoint: '127.0.0.1:8080' is already used by the api",
    ],
    "invalid_values.yaml": [
        "4:40: receivers.otlp.protocols.grpc.max_recv_msg_size_mib: Input should be greater than 0",
        "7:5: processors.latency.window: not a duration: 'ten seconds' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)",
        "10:17: processors.latency.slo.default.p95_ms: Input should be greater than 0",
        "11:7: processors.latency.slo.p95_ms: unknown key (did you mean 'default.p95_ms'?)",
        "13:3: exporters.otlp.endpoint: Field required",
        "14:5: exporters.otlp.protocol: Input should be 'grpc' or 'http/protobuf'",
        "15:15: exporters.otlp.headers.retries: Input should be a valid string",
        "16:5: exporters.otlp.insecure: Input should be a valid boolean, unable to interpret input",
        "17:5: exporters.otlp.timeout: duration must be positive and finite, got '0s'",
        "18:5: exporters.otlp.compression: Input should be 'none' or 'gzip'",
        "19:21: exporters.otlp.sending_queue.queue_size: Input should be greater than or equal to 1",
        "19:36: exporters.otlp.sending_queue.enabled: Input should be a valid boolean, unable to interpret input",
        "20:5: exporters.otlp.retry_on_failure: initial_interval (60s) must not exceed max_interval (30s)",
        "21:23: exporters.otlp.signals[1]: Input should be 'traces', 'metrics', 'logs' or 'spanmetrics'",
        "24:5: exporters.otlp/tls.insecure: true contradicts the https:// endpoint (leave insecure out, or use http://)",
        "27:5: exporters.otlp/nothing.signals: list at least one signal, or leave signals out for the default",
        "29:5: exporters.debug.verbosity: Input should be 'basic', 'normal' or 'detailed'",
        "31:3: storage.path: must not be empty",
        "32:15: storage.retention.raw: not a duration: '1 day' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)",
        "32:35: storage.retention.1d: unknown key",
        "33:1: insecure: Input should be a valid boolean, unable to interpret input",
        "36:12: service.telemetry.logs.level: Input should be 'debug', 'info', 'warn', 'warning' or 'error'",
    ],
    "invalid_many_sections.yaml": [
        "5:14: receivers.otlp.protocols.grpc.endpoint: not host:port: 'localhost'",
        f"6:14: receivers.otlp.protocols.http.endpoint: '0.0.0.0:4318' {NOT_LOOPBACK}",
        "8:13: processors.latency.windw: unknown key (did you mean 'window'?)",
        "10:47: exporters.otlp/upstream.timout: unknown key (did you mean 'timeout'?)",
        "11:37: storage.retention.raw: not a duration: 'forever' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)",
        "12:33: api.tls: Input should be a valid dictionary or instance of TlsSettings",
        "15:68: service.pipelines.traces.exporters[0]: unknown exporter 'otlp/upsteam'"
        " (configured: otlp/upstream; did you mean 'otlp/upstream'?)",
        "16:15: service.telemetry.logz: unknown key (did you mean 'logs'?)",
        "17:20: alerting.route.receiver: unknown receiver 'pagr' (did you mean 'pager'?)",
    ],
    "invalid_duplicate_key.yaml": [
        "7:1: receivers: duplicate key (first at line 1)",
        "11:7: receivers.otlp.protocols.http: duplicate key (first at line 10)",
    ],
    "invalid_yaml_syntax.yaml": [
        "5:11: invalid YAML: while parsing a flow mapping, expected ',' or '}', but got ':'",
    ],
    "invalid_not_a_mapping.yaml": [
        "1:1: the config must be a mapping of sections (receivers, processors, exporters, storage, api, auth, audit, alerting, dashboards, service), got list",
    ],
}


@pytest.fixture(autouse=True)
def _test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRM_TEST_MISSING_HOST", "TRM_TEST_MISSING_ENDPOINT", "TRM_TEST_MISSING_DIR", "TRM_ADMIN_TOKEN",
                 "TRM_TEST_UNSET", "TRM_TEST_QUEUE", "UPSTREAM_ENDPOINT", "UPSTREAM_TENANT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRM_TEST_HOST", "127.0.0.1")
    monkeypatch.setenv("TRM_TEST_TOKEN", "s3cret")
    monkeypatch.setenv("TRM_TEST_EMPTY", "")


def test_every_fixture_is_in_a_table() -> None:
    names = {p.name for p in TESTDATA.glob("*.yaml")}
    assert {n for n in names if n.startswith("invalid_")} == set(INVALID)
    assert {n for n in names if n.startswith("valid_")} == set(VALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture_reports_exactly(name: str) -> None:
    path = TESTDATA / name
    assert check_config(path) == [f"{path}:{line}" for line in INVALID[name]]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture_raises_one_config_error_with_every_problem(name: str) -> None:
    path = TESTDATA / name
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines() == [f"{path}:{line}" for line in INVALID[name]]


# --- valid fixtures ------------------------------------------------------------


def _empty(config: DaemonConfig) -> None:
    assert config == DaemonConfig()
    assert config.grpc_endpoint == "127.0.0.1:4317"
    assert config.http_endpoint == "127.0.0.1:4318"
    assert config.api.endpoint == "127.0.0.1:8080"
    assert config.storage.path == Path("trm-otel-data")


def _both_protocols_on(config: DaemonConfig) -> None:
    protocols = config.receivers["otlp"].protocols
    assert protocols.grpc is not None and protocols.grpc.endpoint == "127.0.0.1:4317"
    assert protocols.grpc.max_recv_msg_size_mib == 4
    assert protocols.http is not None and protocols.http.endpoint == "127.0.0.1:4318"
    assert protocols.http.max_request_body_size_mib == 20


def _grpc_only(config: DaemonConfig) -> None:
    protocols = config.receivers["otlp"].protocols
    assert protocols.http is None
    assert protocols.grpc is not None
    assert (protocols.grpc.host, protocols.grpc.port) == ("127.0.0.1", 14317)
    assert config.grpc_settings() == protocols.grpc
    assert config.http_settings() is None
    assert protocols.grpc.max_recv_msg_size_bytes == 16 * 1024 * 1024
    assert config.grpc_endpoint == "127.0.0.1:14317"
    assert config.http_endpoint is None
    assert config.endpoints() == {
        "receivers.otlp.protocols.grpc.endpoint": "127.0.0.1:14317",
        "api.endpoint": "127.0.0.1:8080",
    }


def _named_components(config: DaemonConfig) -> None:
    assert list(config.receivers) == ["otlp", "otlp/internal"]
    internal = config.receivers["otlp/internal"].protocols
    assert internal.grpc is None and internal.http is not None
    assert (internal.http.host, internal.http.port) == ("::1", 14318)
    assert internal.http.max_request_body_size_bytes == 64 * 1024 * 1024
    assert config.latency().window == 5.0
    assert config.processors["latency/coarse"].history == 6 * 3600.0
    upstream = config.exporters["otlp/upstream"]
    assert isinstance(upstream, OtlpExporterConfig)
    assert (upstream.protocol, upstream.compression, upstream.tls) == ("http/protobuf", "none", True)
    assert upstream.headers == {"x-scope-orgid": "shop"}
    assert config.exporters["debug/verbose"] == DebugExporterConfig(verbosity="detailed")
    assert config.pipelines() == {
        "traces": PipelineConfig(
            receivers=("otlp", "otlp/internal"), processors=("latency",), exporters=("otlp/upstream", "debug/verbose")
        ),
        "traces/coarse": PipelineConfig(receivers=("otlp/internal",), processors=("latency/coarse",)),
        "metrics": PipelineConfig(receivers=("otlp",)),
    }
    assert config.exporter_signals("otlp/upstream") == {"traces", "spanmetrics"}
    assert config.service.telemetry.logs.level == "debug"
    assert config.service.telemetry.logs.python_level == 10


def _env(config: DaemonConfig) -> None:
    assert config.grpc_endpoint == "127.0.0.1:4317"
    exporter = config.exporters["otlp"]
    assert isinstance(exporter, OtlpExporterConfig)
    assert exporter.endpoint == "collector:4317"
    assert exporter.headers == {
        "authorization": "Bearer s3cret",
        "x-literal": "${env:NOT_EXPANDED}",
        "x-empty-default": "fallback",
    }
    assert exporter.sending_queue.queue_size == 250


def _insecure(config: DaemonConfig) -> None:
    assert config.insecure is True
    assert config.grpc_endpoint == "0.0.0.0:4317"
    assert config.http_endpoint == "[::]:4318"
    assert config.api.host == "0.0.0.0"


VALID = {
    "valid_empty.yaml": _empty,
    "valid_protocols_empty.yaml": _both_protocols_on,
    "valid_protocols_null.yaml": _both_protocols_on,
    "valid_grpc_only.yaml": _grpc_only,
    "valid_named_components.yaml": _named_components,
    "valid_env.yaml": _env,
    "valid_insecure.yaml": _insecure,
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_fixture(name: str) -> None:
    path = TESTDATA / name
    assert check_config(path) == []
    VALID[name](load_config(path))


# --- the shipped configs ---------------------------------------------------------


def test_minimal_daemon_config_is_complete() -> None:
    path = DAEMON_CONFIGS / "minimal.yaml"
    assert check_config(path) == []
    config = load_config(path)
    assert config == DaemonConfig()
    assert set(config.pipelines()) == {"traces", "metrics", "logs"}
    assert config.pipelines()["traces"] == PipelineConfig(receivers=("otlp",), processors=("latency",))


def test_full_daemon_config_loads_with_and_without_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    path = DAEMON_CONFIGS / "full.yaml"
    assert check_config(path) == []
    upstream = load_config(path).exporters["otlp/upstream"]
    assert isinstance(upstream, OtlpExporterConfig)
    assert upstream.endpoint == "collector:4317"
    assert upstream.headers == {"x-scope-orgid": "trm-otel"}
    assert upstream.tls is False

    monkeypatch.setenv("UPSTREAM_ENDPOINT", "https://otlp.example.com:4317")
    config = load_config(path)
    upstream = config.exporters["otlp/upstream"]
    assert isinstance(upstream, OtlpExporterConfig)
    assert (upstream.endpoint, upstream.tls) == ("https://otlp.example.com:4317", True)
    assert config.latency().slo.for_endpoint("checkout", "POST /pay").p95_ms == 800.0
    assert config.storage.retention.one_hour == 90 * 86400.0
    assert config.exporter_signals("debug") == {"logs"}


def test_full_daemon_config_sets_every_section() -> None:
    import yaml

    data = yaml.safe_load((DAEMON_CONFIGS / "full.yaml").read_text())
    assert set(data) == set(DaemonConfig.model_fields)
    assert data["exporters"]["otlp/upstream"]["endpoint"] == "${env:UPSTREAM_ENDPOINT:-collector:4317}"


# --- parse_config, load_config, check_config ------------------------------------


def test_parse_config_names_the_source_and_the_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"receivers": {"otlpp": {}}, "api": {"endpoint": "localhost"}})
    assert caught.value.problems == (
        ("<config>: receivers.otlpp", "unknown receiver type 'otlpp' (did you mean 'otlp'?)"),
        ("<config>: api.endpoint", "not host:port: 'localhost'"),
    )
    with pytest.raises(ConfigError) as caught:
        parse_config({"receivers": {"otlpp": {}}}, source="")
    assert str(caught.value) == "receivers.otlpp: unknown receiver type 'otlpp' (did you mean 'otlp'?)"
    with pytest.raises(ConfigError, match=r"^helm values: processors\.latency\.window: not a duration"):
        parse_config({"processors": {"latency": {"window": "soon"}}}, source="helm values")


def test_parse_config_of_nothing_is_the_defaults() -> None:
    assert parse_config(None) == parse_config({}) == DaemonConfig() == load_config()


def test_null_sections_and_components_mean_their_defaults() -> None:
    config = parse_config({"receivers": None, "processors": None, "exporters": None, "service": None})
    assert config == DaemonConfig()
    assert parse_config({"receivers": {"otlp": None}}) == DaemonConfig()


def test_explicitly_empty_sections() -> None:
    config = parse_config({"receivers": {}, "processors": {}})
    assert config.pipelines() == {}
    assert config.grpc_endpoint is None
    assert config.latency() == LatencyProcessorConfig()
    assert parse_config({"processors": {}}).pipelines()["logs"] == PipelineConfig(receivers=("otlp",))


def test_unused_receivers_are_not_started() -> None:
    config = parse_config(
        {
            "receivers": {"otlp": {}, "otlp/spare": {"protocols": {"grpc": {"endpoint": "127.0.0.1:24317"}}}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp/spare"]}}},
        }
    )
    assert list(config.receivers_in_use()) == ["otlp/spare"]
    assert (config.grpc_endpoint, config.http_endpoint) == ("127.0.0.1:24317", None)
    assert config.endpoints() == {
        "receivers.otlp/spare.protocols.grpc.endpoint": "127.0.0.1:24317",
        "api.endpoint": "127.0.0.1:8080",
    }


def test_exporter_signals_are_its_pipelines_plus_spanmetrics_filtered_by_signals() -> None:
    config = parse_config(
        {
            "exporters": {
                "otlp": {"endpoint": "c:4317"},
                "otlp/only": {"endpoint": "c:4317", "signals": ["logs"]},
                "otlp/aggregates": {"endpoint": "c:4317", "signals": ["spanmetrics", "logs"]},
                "debug": None,
            },
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "exporters": ["otlp", "otlp/only", "otlp/aggregates", "debug"]},
                    "metrics/x": {"receivers": ["otlp"], "exporters": ["otlp"]},
                }
            },
        }
    )
    assert config.exporter_signals("otlp/aggregates") == {"spanmetrics"}
    assert config.exporter_signals("debug") == {"traces"}
    assert config.exporter_signals("otlp") == {"traces", "metrics", "spanmetrics"}
    assert config.exporter_signals("otlp/only") == set()  # logs only, and it receives none


def test_default_pipelines_leave_exporters_unwired() -> None:
    config = parse_config({"exporters": {"otlp": {"endpoint": "c:4317"}}})
    assert all(p.exporters == () for p in config.pipelines().values())
    assert config.exporter_signals("otlp") == set()


def test_otlp_exporter_defaults_and_tls_rule() -> None:
    exporter = OtlpExporterConfig(endpoint="collector:4317")
    assert exporter.protocol == "grpc"
    assert exporter.timeout == 10.0
    assert exporter.compression == "gzip"
    assert (exporter.sending_queue.enabled, exporter.sending_queue.queue_size) == (True, 1000)
    retry = exporter.retry_on_failure
    assert (retry.enabled, retry.initial_interval, retry.max_interval, retry.max_elapsed_time) == (True, 1, 30, 300)
    assert exporter.signals == ("traces", "metrics", "logs", "spanmetrics")
    assert (exporter.tls, exporter.url) == (False, "http://collector:4317")
    assert OtlpExporterConfig(endpoint="collector:4317", insecure=False).url == "https://collector:4317"
    assert OtlpExporterConfig(endpoint="https://c:4318", protocol="http/protobuf").tls is True


def test_data_dir_overrides_storage_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage: {path: /var/lib/trm, retention: {raw: 2h}}\n")
    assert load_config(path).storage.path == Path("/var/lib/trm")
    config = load_config(path, data_dir=tmp_path / "data")
    assert config.storage.path == tmp_path / "data"
    assert config.storage.retention.raw == 7200.0
    assert load_config(data_dir="elsewhere").storage.path == Path("elsewhere")


def test_ids_with_dots_are_quoted_and_still_located(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("receivers:\n  otlp/a.b:\n    protocols:\n      grpc: {endpoint: nowhere}\n")
    assert check_config(path) == [f"{path}:4:14: receivers[\"otlp/a.b\"].protocols.grpc.endpoint: not host:port: 'nowhere'"]


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert check_config(missing) == [f"{missing}: cannot read the config file: No such file or directory"]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"receivers: \xff\n")
    assert check_config(binary) == [f"{binary}: cannot read the config file: not UTF-8 text"]
    assert check_config(tmp_path) == [f"{tmp_path}: cannot read the config file: Is a directory"]


def test_missing_tls_files_are_named_by_key_path_and_refuse_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trm_otel.cli import main

    files = make_tls_files(tmp_path)  # the handshakes are tests/e2e/test_mtls_e2e.py's
    cert, key = files.cert_file, files.key_file
    missing = tmp_path / "clients-ca.pem"
    tls = f"{{cert_file: {cert}, key_file: {key}, client_ca_file: {missing}}}"
    lines = [
        "receivers:",
        "  otlp:",
        "    protocols:",
        f"      grpc: {{endpoint: 127.0.0.1:0, tls: {tls}}}",
        "      http:",
        "        endpoint: 127.0.0.1:0",
        "        tls:",
        f"          cert_file: {cert}",
        f"          key_file: {key}",
        f"          client_ca_file: {missing}",
        "api:",
        "  endpoint: 127.0.0.1:0",
        f"  tls: {{cert_file: {tmp_path}, key_file: {key}, client_ca_file: {missing}}}",
        f"storage: {{path: {tmp_path / 'data'}}}",
    ]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines) + "\n")

    def at(line: int, key: str) -> str:  # where the key is written
        return f"{path}:{line}:{lines[line - 1].index(key) + 1}"

    expected = [
        f"{at(4, 'client_ca_file')}: receivers.otlp.protocols.grpc.tls.client_ca_file: cannot read {missing}: no such file",
        f"{at(10, 'client_ca_file')}: receivers.otlp.protocols.http.tls.client_ca_file: cannot read {missing}: no such file",
        f"{at(13, 'cert_file')}: api.tls.cert_file: cannot read {tmp_path}: is a directory",
        f"{at(13, 'client_ca_file')}: api.tls.client_ca_file: cannot read {missing}: no such file",
    ]
    assert check_config(path) == expected
    assert main(["serve", "--config", str(path)]) == 2  # refused before anything listens
    assert capsys.readouterr().err.splitlines() == [f"trm-otel: invalid configuration in {path}:", *expected]
    assert not (tmp_path / "data").exists()


def test_tls_files_that_are_not_pem_or_do_not_match_are_named_by_key_path_and_refuse_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, these passed the check and the daemon then failed with "cannot listen ...: Failed to bind".
    from cryptography.hazmat.primitives import serialization

    from trm_otel.cli import main

    good = make_tls_files(tmp_path)
    (tmp_path / "other").mkdir()
    other = make_tls_files(tmp_path / "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    encrypted = tmp_path / "encrypted-key.pem"
    private_key = serialization.load_pem_private_key(good.key_file.read_bytes(), None)
    encrypted.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        )
    )
    lines = [
        "receivers:",
        "  otlp:",
        "    protocols:",
        f"      grpc: {{endpoint: 127.0.0.1:0, tls: {{cert_file: {good.cert_file}, key_file: {good.key_file},"
        f" client_ca_file: {garbage}}}}}",
        "      http:",
        "        endpoint: 127.0.0.1:0",
        f"        tls: {{cert_file: {good.cert_file}, key_file: {encrypted}}}",
        "api:",
        "  endpoint: 127.0.0.1:0",
        f"  tls: {{cert_file: {good.cert_file}, key_file: {other.key_file}}}",
        f"storage: {{path: {tmp_path / 'data'}}}",
    ]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines) + "\n")

    def at(line: int, key: str) -> str:
        return f"{path}:{line}:{lines[line - 1].index(key) + 1}"

    expected = [
        f"{at(4, 'client_ca_file')}: receivers.otlp.protocols.grpc.tls.client_ca_file: not a PEM certificate: {garbage}"
        " (no certificate or crl found)",
        f"{at(7, 'key_file')}: receivers.otlp.protocols.http.tls.key_file: {encrypted} is encrypted with a password,"
        " which is not supported",
        f"{at(10, 'key_file')}: api.tls.key_file: does not match cert_file ({good.cert_file})",
    ]
    assert check_config(path) == expected
    assert main(["serve", "--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"trm-otel: invalid configuration in {path}:", *expected]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("cert", "key", "ca", "expected"),
    [
        ("garbage", "key", None, "api.tls.cert_file: not a PEM certificate: {garbage} (malformed PEM)"),
        ("key", "key", None, "api.tls.cert_file: not a PEM certificate: {key} (no certificate or crl found)"),
        ("cert", "cert", None, "api.tls.key_file: not a PEM private key: {cert}"),
        ("cert", "empty", None, "api.tls.key_file: not a PEM private key: {empty}"),
        ("cert", "key", "key", "api.tls.client_ca_file: not a PEM certificate: {key} (no certificate or crl found)"),
        ("cert", "key", "fifo", "api.tls.client_ca_file: cannot read {fifo}: not a regular file"),
        ("cert", "key", "ca", None),
    ],
)
def test_tls_file_contents_are_checked_when_the_config_loads(
    tmp_path: Path, cert: str, key: str, ca: str | None, expected: str | None
) -> None:
    tls = make_tls_files(tmp_path)
    files = {"cert": tls.cert_file, "key": tls.key_file, "ca": tls.ca_file, "garbage": tmp_path / "garbage.pem",
             "empty": tmp_path / "empty.pem", "fifo": tmp_path / "fifo"}
    files["garbage"].write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    files["empty"].write_text("")
    os.mkfifo(files["fifo"])  # opening it to read would block start-up
    settings = {"cert_file": str(files[cert]), "key_file": str(files[key])}
    if ca is not None:
        settings["client_ca_file"] = str(files[ca])
    raw = {"api": {"endpoint": "127.0.0.1:0", "tls": settings}}
    if expected is None:
        assert parse_config(raw, source="").api.tls is not None
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="")
    assert str(caught.value) == expected.format(**{name: str(p) for name, p in files.items()})


_UNREADABLE_CHECK = """
import sys
from trm_otel.config import ConfigError, parse_config
raw = {"api": {"endpoint": "127.0.0.1:0", "tls": {"cert_file": sys.argv[1], "key_file": sys.argv[2]}}}
try:
    parse_config(raw, source="")
except ConfigError as err:
    print(err)
"""


def test_an_unreadable_tls_file_is_a_config_error(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    tls.key_file.chmod(0)
    command = [sys.executable, "-c", _UNREADABLE_CHECK, str(tls.cert_file), str(tls.key_file)]
    try:
        tls.key_file.read_bytes()
        # Root reads files whatever their mode: check in a process without the capabilities that allow it.
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    except PermissionError:
        pass
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"api.tls.key_file: cannot read {tls.key_file}: permission denied", done.stderr


def test_yaml_syntax_error_is_one_problem_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("api:\n  endpoint: a: b\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ((f"{path}:2:14", "invalid YAML: mapping values are not allowed here"),)
    path.write_text("a: 1\n---\nb: 2\n")
    assert check_config(path) == [
        f"{path}:2:1: invalid YAML: expected a single document in the stream, but found another document"
    ]


def test_a_missing_variable_inside_an_unknown_component_is_not_reported_twice() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"exporters": {"kafka": {"brokers": "${env:TRM_TEST_MISSING_HOST}"}}}, source="")
    assert str(caught.value) == "exporters.kafka: unknown exporter type 'kafka' (known: debug, otlp)"


def test_environment_default_applies_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    def endpoint(value: str) -> str:
        return str(parse_config({"exporters": {"otlp": {"endpoint": value}}}).exporters["otlp"].endpoint)  # type: ignore[union-attr]

    assert endpoint("${env:TRM_TEST_EMPTY:-a:1}") == "a:1"
    assert endpoint("${env:TRM_TEST_UNSET:-b:2}") == "b:2"
    monkeypatch.setenv("TRM_TEST_UNSET", "c:3")
    assert endpoint("${env:TRM_TEST_UNSET:-b:2}") == "c:3"
    assert endpoint("${env:TRM_TEST_HOST}:${env:TRM_TEST_QUEUE:-9}") == "127.0.0.1:9"
    # Keys are never expanded; expanded values are not expanded again.
    monkeypatch.setenv("TRM_TEST_UNSET", "${env:TRM_TEST_HOST}")
    config = parse_config(
        {"exporters": {"otlp": {"endpoint": "c:1", "headers": {"${env:TRM_TEST_HOST}": "${env:TRM_TEST_UNSET}"}}}}
    )
    assert config.exporters["otlp"].headers == {"${env:TRM_TEST_HOST}": "${env:TRM_TEST_HOST}"}  # type: ignore[union-attr]


# --- the model on its own --------------------------------------------------------


def test_model_validation_reports_cross_section_problems_with_value_problems() -> None:
    with pytest.raises(ValidationError) as caught:
        DaemonConfig.model_validate(
            {
                "api": {"endpoint": "0.0.0.0:8080"},
                "processors": {"latency": {"window": "x"}},
                "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["latency/x"]}}},
            }
        )
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("processors", "latency", "window"), "Value error, not a duration: 'x' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)"),
        (
            ("service", "pipelines", "traces", "processors", 0),
            "unknown processor 'latency/x' (configured: latency; did you mean 'latency'?)",
        ),
        (("api", "endpoint"), f"'0.0.0.0:8080' {NOT_LOOPBACK}"),
    ]


def test_models_built_in_code_are_checked_too() -> None:
    with pytest.raises(ValidationError, match="unknown exporter 'otlp'"):
        DaemonConfig(service={"pipelines": {"traces": PipelineConfig(receivers=("otlp",), exporters=("otlp",))}})  # type: ignore[arg-type]
    config = DaemonConfig(
        receivers={"otlp/a": OtlpReceiverConfig.model_validate({"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}})}
    )
    assert config.grpc_endpoint == "127.0.0.1:0"


def test_unknown_keys_are_suggested_from_the_right_exporter_model() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"exporters": {"debug": {"endpoint": "x"}, "otlp": {"endpoint": "c:1", "verbosty": 1}}}, source="")
    assert str(caught.value).splitlines() == [
        "exporters.debug.endpoint: unknown key",
        "exporters.otlp.verbosty: unknown key",
    ]


def test_config_is_frozen() -> None:
    config = DaemonConfig()
    with pytest.raises(ValidationError):
        setattr(config, "insecure", True)  # noqa: B010 - the assignment is the point
    with pytest.raises(ValidationError):
        setattr(config.api, "endpoint", "0.0.0.0:1")  # noqa: B010


def test_the_no_file_default_is_the_documented_one() -> None:
    config = DaemonConfig()
    assert config.endpoints() == {
        "receivers.otlp.protocols.grpc.endpoint": "127.0.0.1:4317",
        "receivers.otlp.protocols.http.endpoint": "127.0.0.1:4318",
        "api.endpoint": "127.0.0.1:8080",
    }
    assert config.latency() == LatencyProcessorConfig()
    retention = config.storage.retention
    assert (retention.raw, retention.one_minute, retention.one_hour) == (86400.0, 7 * 86400.0, 90 * 86400.0)
    assert config.model_dump(by_alias=True)["storage"]["retention"] == {"raw": 86400.0, "1m": 604800.0, "1h": 7776000.0}
    assert config.service.telemetry.logs.python_level == 20


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:4317", ("127.0.0.1", 4317)),
        ("[::1]:4317", ("::1", 4317)),
        ("localhost:0", ("localhost", 0)),
        ("collector.svc.cluster.local:65535", ("collector.svc.cluster.local", 65535)),
    ],
)
def test_host_port(endpoint: str, expected: tuple[str, int]) -> None:
    assert host_port(endpoint) == expected


def test_component_type() -> None:
    assert component_type("otlp/upstream") == "otlp"
    assert component_type("latency") == "latency"
    assert component_type("traces/a/b") == "traces"


def test_public_names() -> None:
    assert sorted(config_module.__all__) == [
        "ApiConfig",
        "DaemonConfig",
        "DebugExporterConfig",
        "Duration",
        "GrpcServerConfig",
        "HOSTMETRICS_SCRAPERS",
        "HostMetricsReceiverConfig",
        "HttpServerConfig",
        "LatencyProcessorConfig",
        "LogsTelemetryConfig",
        "OtlpExporterConfig",
        "OtlpProtocols",
        "OtlpReceiverConfig",
        "PIPELINE_SIGNALS",
        "PipelineConfig",
        "QueueConfig",
        "RetentionConfig",
        "RetryConfig",
        "SendingQueueConfig",
        "ServiceConfig",
        "Signal",
        "StorageConfig",
        "TelemetryConfig",
        "check_config",
        "component_type",
        "host_port",
        "latency_processor_config",
        "load_config",
        "parse_config",
        "parse_duration",
    ]
    for name in config_module.__all__:
        assert hasattr(config_module, name)


def test_hostmetrics_receiver_feeds_only_the_metrics_pipeline_by_default() -> None:
    config = parse_config({"receivers": {"otlp": None, "hostmetrics": {"collection_interval": "5s", "scrapers": {"cpu": {}, "memory": None}}}})
    pipelines = config.pipelines()
    assert pipelines["metrics"].receivers == ("otlp", "hostmetrics")
    assert pipelines["traces"].receivers == ("otlp",)
    hostmetrics = config.hostmetrics()
    assert hostmetrics is not None
    assert (hostmetrics.collection_interval, hostmetrics.enabled_scrapers()) == (5.0, ("cpu", "memory"))
    assert list(config.receivers_in_use()) == ["otlp"]


def test_hostmetrics_unknown_scraper_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"receivers": {"hostmetrics": {"scrapers": {"memmory": {}}}}}, source="")
    assert str(caught.value) == "receivers.hostmetrics.scrapers: unknown scraper 'memmory' (did you mean 'memory'?)"
