"""The wheel holds processors/ and receivers/ under trm_otel/, and nothing top-level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
    )
    (path,) = out.glob("trm_otel-*.whl")
    return zipfile.ZipFile(path)


@pytest.mark.parametrize("folder", ["processors", "receivers"])
def test_every_module_of_the_folder_is_in_the_wheel_under_trm_otel(wheel: zipfile.ZipFile, folder: str) -> None:
    names = set(wheel.namelist())
    modules = sorted(p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*.py"))
    assert modules, f"{folder}/ has no modules"
    missing = [m for m in modules if f"trm_otel/{folder}/{m}" not in names]
    assert missing == []


def test_every_module_of_the_core_package_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "trm_otel").rglob("*.py"))
    assert [m for m in modules if m not in names] == []


def test_nothing_top_level_but_trm_otel(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"trm_otel"}


def test_wheel_ships_py_typed_and_the_console_script(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "trm_otel/py.typed" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "trm-otel = trm_otel.cli:main" in wheel.read(entry_points).decode()


def test_installed_environment_has_no_top_level_processors_or_receivers() -> None:
    code = (
        "import importlib.util, sys; "
        "sys.path = [p for p in sys.path if p not in ('', '.')]; "
        "print(importlib.util.find_spec('processors'), importlib.util.find_spec('receivers'), "
        "importlib.util.find_spec('trm_otel.processors') is not None)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None", "True"]
