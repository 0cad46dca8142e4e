"""The shipped configs: the daemon's load as promised, the Collector's are wired and aim at the daemon.

No Collector binary is available to the tests, so each ``collector/*.yaml``
is checked the way the Collector checks a config before it starts: every id
a pipeline names is defined in its section (a connector counts as an
exporter of one pipeline and a receiver of another), every defined
component and extension is used, authenticators name defined extensions,
and component types are ones the Collector (contrib) has. On top: it sends
to trm-otel's OTLP ports, and the README documents it and its variables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from trm_otel.alerting.rules import load_rule_files
from trm_otel.config import OtlpExporterConfig, load_config

from .alerting.notifiers.servers import make_tls_files

ROOT = Path(__file__).resolve().parents[1] / "otel-config"
COLLECTOR_CONFIGS = sorted((ROOT / "collector").glob("*.yaml"))
README = (ROOT / "README.md").read_text()

# Component types of the Collector (core + contrib) these configs may use.
KNOWN_TYPES = {
    "receivers": {"otlp", "hostmetrics", "prometheus", "filelog", "kubeletstats"},
    "processors": {"batch", "memory_limiter", "resourcedetection", "resource", "attributes", "tail_sampling",
                   "probabilistic_sampler", "filter", "transform", "k8sattributes"},
    "exporters": {"otlp", "otlphttp", "loadbalancing", "load_balancing", "prometheusremotewrite", "debug"},
    "connectors": {"spanmetrics", "forward", "routing"},
    "extensions": {"health_check", "bearertokenauth", "basicauth", "pprof", "zpages", "file_storage"},
}
SIGNALS = {"traces", "metrics", "logs"}
DAEMON_PORTS = {4317, 4318}
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str) -> str:
    """``${env:VAR:-default}`` -> default; ``${env:VAR}`` -> a placeholder (what an unset variable would be)."""
    return _ENV.sub(lambda m: m.group(2) if m.group(2) is not None else f"<{m.group(1)}>", text)


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(_expand(path.read_text()))
    assert isinstance(data, dict)
    return data


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_there_is_a_config_per_topology() -> None:
    assert [p.name for p in COLLECTOR_CONFIGS] == [
        "agent.yaml", "gateway-loadbalancing.yaml", "spanmetrics.yaml", "tail-sampling.yaml",
    ]


def wiring_problems(config: dict[str, Any]) -> list[str]:
    """What the Collector would refuse (or warn about) in ``config``'s sections and pipelines."""
    problems: list[str] = []
    defined = {section: set(config.get(section) or {}) for section in KNOWN_TYPES}
    for section, ids in defined.items():
        for cid in sorted(ids):
            if _type(cid) not in KNOWN_TYPES[section]:
                problems.append(f"{section}.{cid}: unknown {section[:-1]} type {_type(cid)!r}")
    service = config.get("service") or {}
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("service.pipelines: none")
    used: dict[str, set[str]] = {section: set() for section in KNOWN_TYPES}
    connector_as = {"exporter": set(), "receiver": set()}
    for pid, pipeline in pipelines.items():
        if _type(pid) not in SIGNALS:
            problems.append(f"service.pipelines.{pid}: not a traces, metrics or logs pipeline")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"service.pipelines.{pid}: needs receivers and exporters")
        for section in ("receivers", "processors", "exporters"):
            for cid in pipeline.get(section) or []:
                if cid in defined[section]:
                    used[section].add(cid)
                elif section != "processors" and cid in defined["connectors"]:
                    used["connectors"].add(cid)
                    connector_as[section[:-1]].add(cid)
                else:
                    problems.append(f"service.pipelines.{pid}.{section}: {cid!r} is not defined")
    for cid in sorted(defined["connectors"]):
        if cid not in connector_as["exporter"] or cid not in connector_as["receiver"]:
            problems.append(f"connectors.{cid}: must be an exporter of one pipeline and a receiver of another")
    for section in ("receivers", "processors", "exporters", "connectors"):
        for cid in sorted(defined[section] - used[section]):
            problems.append(f"{section}.{cid}: defined but no pipeline uses it")
    enabled = set(service.get("extensions") or [])
    for cid in sorted(enabled - defined["extensions"]):
        problems.append(f"service.extensions: {cid!r} is not defined")
    for cid in sorted(defined["extensions"] - enabled):
        problems.append(f"extensions.{cid}: defined but not in service.extensions")
    for authenticator in re.findall(r"authenticator: (\S+)", yaml.safe_dump(config)):
        if authenticator not in enabled:
            problems.append(f"authenticator {authenticator!r} is not an enabled extension")
    return problems


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_collector_config_pipelines_name_only_what_it_defines(path: Path) -> None:
    assert wiring_problems(_load(path)) == []


def test_the_wiring_check_finds_what_the_collector_would_refuse() -> None:
    config = {
        "receivers": {"otlp": {}, "jaeger": {}},
        "processors": {"batch": {}},
        "exporters": {"otlp/trm-otel": {"auth": {"authenticator": "bearertokenauth"}}},
        "connectors": {"spanmetrics": {}},
        "extensions": {"health_check": {}},
        "service": {
            "extensions": [],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch", "tail_sampling"],
                                     "exporters": ["otlp/trm-otel", "spanmetrics"]}},
        },
    }
    assert wiring_problems(config) == [
        "receivers.jaeger: unknown receiver type 'jaeger'",
        "service.pipelines.traces.processors: 'tail_sampling' is not defined",
        "connectors.spanmetrics: must be an exporter of one pipeline and a receiver of another",
        "receivers.jaeger: defined but no pipeline uses it",
        "extensions.health_check: defined but not in service.extensions",
        "authenticator 'bearertokenauth' is not an enabled extension",
    ]


def _daemon_ports(config: dict[str, Any]) -> set[int]:
    """The ports of every trm-otel destination: otlp exporters named for it and load-balanced backends."""
    ports: set[int] = set()
    for eid, exporter in (config.get("exporters") or {}).items():
        if "trm-otel" not in eid:
            continue
        hostnames = ((exporter.get("resolver") or {}).get("static") or {}).get("hostnames") or []
        endpoints = [exporter["endpoint"]] if "endpoint" in exporter else hostnames
        assert endpoints, f"{eid}: no endpoint"
        for endpoint in endpoints:
            ports.add(int(endpoint.rsplit(":", 1)[1].split("/")[0]))
    return ports


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_collector_config_sends_to_the_daemon_ports(path: Path) -> None:
    config = _load(path)
    ports = _daemon_ports(config)
    assert ports and ports <= DAEMON_PORTS, f"{path.name} sends to trm-otel on {ports}"
    if "loadbalancing" in path.name:
        (exporter,) = config["exporters"].values()
        assert exporter["routing_key"] == "service"


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_readme_explains_each_collector_config_and_its_variables(path: Path) -> None:
    section = README.split(f"### `{path.name}`", 1)
    assert len(section) == 2, f"README.md has no section for {path.name}"
    body = section[1].split("\n### ", 1)[0]
    assert "```\n" in body and "trm-otel" in body, "a diagram that shows where trm-otel sits"
    for name, default in _ENV.findall(path.read_text()):
        if name != "TRM_INGEST_TOKEN" or default == "":
            assert name in body, f"README.md does not name {name} for {path.name}"


def test_tail_sampling_samples_only_the_trace_store_pipeline() -> None:
    config = _load(ROOT / "collector" / "tail-sampling.yaml")
    to_daemon = [p for p in config["service"]["pipelines"].values() if "otlp/trm-otel" in p["exporters"]]
    assert to_daemon and all("tail_sampling" not in p.get("processors", []) for p in to_daemon)


def test_spanmetrics_connector_uses_trm_otel_names() -> None:
    connector = _load(ROOT / "collector" / "spanmetrics.yaml")["connectors"]["spanmetrics"]
    assert connector["namespace"] == "traces.span.metrics"
    assert connector["histogram"] == {"unit": "ms", "exponential": {"max_size": 160}}


# ----------------------------------------------------------------- daemon


def test_production_config_binds_everywhere_with_tls_and_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = make_tls_files(tmp_path)
    monkeypatch.setenv("TRM_TLS_CERT_FILE", str(tls.cert_file))
    monkeypatch.setenv("TRM_TLS_KEY_FILE", str(tls.key_file))
    for role in ("INGEST", "VIEWER", "ADMIN"):
        monkeypatch.setenv(f"TRM_{role}_TOKEN", f"{role.lower()}-token-0123456789abcdef")
    config = load_config(ROOT / "daemon" / "production.yaml")
    assert config.insecure is False
    servers = [config.grpc_settings(), config.http_settings(), config.api]
    assert [s.host for s in servers if s is not None] == ["0.0.0.0"] * 3
    assert all(s is not None and s.tls is not None and s.tls.cert_file == tls.cert_file for s in servers)
    assert [(t.name, t.role) for t in config.auth.all_tokens()] == [
        ("ingest", "ingest"), ("viewer", "viewer"), ("admin", "admin"),
    ]


def test_alerting_config_routes_critical_alerts_to_on_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T0/B0/X")
    monkeypatch.setenv("SMTP_PASSWORD", "not-a-real-password")
    config = load_config(ROOT / "daemon" / "alerting.yaml")
    assert config.alerting.receiver_names() >= {"team", "on-call", "on-call-lead"}
    rules = load_rule_files(config.alerting.rule_files)
    assert [(g.name, [r.alert for r in g.rules]) for g in rules.groups] == [
        ("latency-slo", ["P95AboveSlo", "P99Critical", "ErrorBudgetBurn", "LatencyHeadingForSlo"]),
    ]
    assert not any(isinstance(e, OtlpExporterConfig) for e in config.exporters.values())
