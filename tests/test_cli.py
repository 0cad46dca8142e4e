from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import trm_otel
from trm_otel.cli import main

from .alerting.notifiers.servers import make_tls_files


def test_version_subcommand_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"trm-otel {trm_otel.__version__}\n"


def test_console_script_is_installed() -> None:
    path = shutil.which("trm-otel", path=str(Path(sys.executable).parent))
    assert path is not None, "the trm-otel console script is not installed beside this Python"
    out = subprocess.run([path, "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"trm-otel {trm_otel.__version__}"


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: trm-otel" in capsys.readouterr().err


def test_check_config_reports_a_typo_with_key_path_and_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("receivers:\n  otlp:\n    protocols:\n      htttp:\n        endpoint: 127.0.0.1:4318\n")
    path = shutil.which("trm-otel", path=str(Path(sys.executable).parent))
    assert path is not None
    out = subprocess.run([path, "check-config", str(config)], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr == f"{config}:4:7: receivers.otlp.protocols.htttp: unknown key (did you mean 'http'?)\n"


# What each shipped daemon config needs from the environment (secrets have no defaults on purpose).
SHIPPED_ENV = {
    "alerting.yaml": {"SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T0/B0/X", "SMTP_PASSWORD": "pw"},
    "production.yaml": {
        "TRM_INGEST_TOKEN": "ingest-token-0123456789abcdef",
        "TRM_VIEWER_TOKEN": "viewer-token-0123456789abcdef",
        "TRM_ADMIN_TOKEN": "admin-token-0123456789abcdef",
    },
}


def test_check_config_accepts_the_shipped_daemon_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[1] / "otel-config" / "daemon"
    configs = sorted(root.glob("*.yaml"))
    assert {"minimal.yaml", "full.yaml", "production.yaml", "alerting.yaml"} <= {c.name for c in configs}
    for name in SHIPPED_ENV["production.yaml"]:
        monkeypatch.delenv(name, raising=False)
    for name in SHIPPED_ENV["alerting.yaml"]:
        monkeypatch.delenv(name, raising=False)
    for variable in ("TRM_TLS_CERT_FILE", "TRM_TLS_KEY_FILE", "TRM_DATA_DIR"):
        monkeypatch.delenv(variable, raising=False)
    tls = make_tls_files(tmp_path)
    monkeypatch.setenv("TRM_TLS_CERT_FILE", str(tls.cert_file))
    monkeypatch.setenv("TRM_TLS_KEY_FILE", str(tls.key_file))
    for config in configs:
        with monkeypatch.context() as env:
            for name, value in SHIPPED_ENV.get(config.name, {}).items():
                env.setenv(name, value)
            assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out == f"config OK: {config}\n"


def test_check_config_names_the_missing_secrets_of_the_shipped_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[1] / "otel-config" / "daemon"
    for names in SHIPPED_ENV.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    tls = make_tls_files(tmp_path)  # only the tokens are missing
    monkeypatch.setenv("TRM_TLS_CERT_FILE", str(tls.cert_file))
    monkeypatch.setenv("TRM_TLS_KEY_FILE", str(tls.key_file))
    assert main(["check-config", str(root / "production.yaml")]) == 1
    unset = "is not set (set it, or write ${{env:{0}:-default}})"
    assert [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()] == [
        f"auth.tokens[{i}].token: environment variable {name} {unset.format(name)}"
        for i, name in enumerate(SHIPPED_ENV["production.yaml"])
    ]
    assert main(["check-config", str(root / "alerting.yaml")]) == 1
    assert [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()] == [
        "alerting.receivers[1].slack_configs[0].api_url: environment variable SLACK_WEBHOOK_URL "
        + unset.format("SLACK_WEBHOOK_URL"),
        "alerting.receivers[2].email_configs[0].auth_password: environment variable SMTP_PASSWORD "
        + unset.format("SMTP_PASSWORD"),
    ]


# file content -> the exact lines `trm-otel check-config` prints, after "<file>:"
BAD_CONFIGS = {
    "typo": (
        "receivers:\n  otlp:\n    protocols:\n      grcp:\n        endpoint: 127.0.0.1:4317\n",
        ["4:7: receivers.otlp.protocols.grcp: unknown key (did you mean 'grpc'?)"],
    ),
    "section-typo": (
        "storge:\n  path: ./data\n",
        ["1:1: storge: unknown key (did you mean 'storage'?)"],
    ),
    "bad-duration": (
        "processors:\n  latency:\n    window: 10 seconds\n",
        ["3:5: processors.latency.window: not a duration: '10 seconds' (use e.g. 500ms, 10s, 5m, 1h30m, 7d)"],
    ),
    "bad-endpoints": (
        "api:\n  endpoint: localhost\nexporters:\n  otlp:\n    endpoint: ftp://collector:4317\n",
        [
            "2:3: api.endpoint: not host:port: 'localhost'",
            "5:5: exporters.otlp.endpoint: not host:port or an http(s) URL: 'ftp://collector:4317'",
        ],
    ),
    "undefined-components": (
        "exporters:\n  otlp/upstraem:\n    endpoint: collector:4317\nservice:\n  pipelines:\n    traces:\n"
        "      receivers: [otlp]\n      processors: [latency, batch]\n      exporters: [otlp/upstream]\n",
        [
            "8:29: service.pipelines.traces.processors[1]: unknown processor 'batch' (configured: latency)",
            "9:19: service.pipelines.traces.exporters[0]: unknown exporter 'otlp/upstream'"
            " (configured: otlp/upstraem; did you mean 'otlp/upstraem'?)",
        ],
    ),
    "missing-env": (
        "exporters:\n  otlp:\n    endpoint: ${env:TRM_TEST_UNSET_ENDPOINT}\n"
        "auth:\n  tokens:\n    - {token: \"${env:TRM_TEST_UNSET_TOKEN}\", role: admin}\n",
        [
            "3:5: exporters.otlp.endpoint: environment variable TRM_TEST_UNSET_ENDPOINT is not set"
            " (set it, or write ${env:TRM_TEST_UNSET_ENDPOINT:-default})",
            "6:8: auth.tokens[0].token: environment variable TRM_TEST_UNSET_TOKEN is not set"
            " (set it, or write ${env:TRM_TEST_UNSET_TOKEN:-default})",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_prints_each_problem_exactly(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRM_TEST_UNSET_ENDPOINT", raising=False)
    monkeypatch.delenv("TRM_TEST_UNSET_TOKEN", raising=False)
    text, expected = BAD_CONFIGS[case]
    config = tmp_path / f"{case}.yaml"
    config.write_text(text)
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [f"{config}:{line}" for line in expected]


def test_instrument_without_a_command_says_how_to_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["instrument"]) == 2
    assert capsys.readouterr().err == (
        "trm-otel instrument: give the command to run, e.g. trm-otel instrument -- python app.py\n"
    )


def test_instrument_names_a_command_it_cannot_find(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["instrument", "--", "no-such-program-anywhere", "--flag"]) == 127
    assert capsys.readouterr().err == "trm-otel instrument: command not found: no-such-program-anywhere\n"


def test_serve_with_an_invalid_config_exits_2_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("processors:\n  latency:\n    window: soon\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"trm-otel: invalid configuration in {config}:" in err
    assert "processors.latency.window: not a duration: 'soon'" in err
