from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import trm_otel
from trm_otel.cli import main


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


def test_check_config_accepts_the_shipped_daemon_configs(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[1] / "otel-config" / "daemon"
    for config in sorted(root.glob("*.yaml")):
        assert main(["check-config", str(config)]) == 0
        assert capsys.readouterr().out == f"config OK: {config}\n"


def test_serve_with_an_invalid_config_exits_2_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("processors:\n  latency:\n    window: soon\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"trm-otel: invalid configuration in {config}:" in err
    assert "processors.latency.window: not a duration: 'soon'" in err
