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
