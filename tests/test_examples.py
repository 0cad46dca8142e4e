"""Every example runs, as a user would run it, and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path) -> None:
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example should show its result"


def test_quickstart_prints_a_table_of_endpoints() -> None:
    example = next(p for p in EXAMPLES if p.name == "quickstart.py")
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120).stdout
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["endpoint", "count", "p50", "p95", "p99"]
    endpoints = {line.split()[0] + " " + line.split()[1] for line in lines[1:4]}
    assert endpoints == {"GET /products", "GET /cart", "POST /checkout"}
    assert sum(int(line.split()[2]) for line in lines[1:4]) == 5000
