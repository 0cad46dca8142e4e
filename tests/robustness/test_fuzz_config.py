"""Fuzzing the config loader: whatever the file says, the answer is a config or a :class:`ConfigError`.

``load_config`` promises every problem as ``file:line:col: key.path:
message`` in one ``ConfigError``; anything else escaping it (a PyYAML,
pydantic, OS or Python error) would reach the user of ``trm-otel serve``
or ``check-config`` as a traceback. Inputs: the shipped configs and test
fixtures broken as text, their parsed documents with values replaced by
odd ones, arbitrary YAML documents over the config's own vocabulary,
arbitrary text, and mutated alert rule files (which ``load_config`` loads
and parses too).
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from trm_otel.config import load_config, parse_config
from trm_otel.errors import ConfigError

from .mutations import DataChooser
from .settings import fuzz_settings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [*(ROOT / "otel-config" / "daemon").glob("*.yaml"), *(ROOT / "tests" / "config_testdata").glob("*.yaml")]
)
RULES = ROOT / "otel-config" / "daemon" / "rules" / "shop.yaml"


# Read once: hypothesis replays an example by its decisions, so its inputs must not change under it.
_TEXTS = [path.read_text(encoding="utf-8") for path in SOURCES]
_RULES_TEXT = RULES.read_text(encoding="utf-8")


def _document(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:  # the fixture of a syntax error
        return None


_DOCUMENTS = [document for document in map(_document, _TEXTS) if document is not None]

# Characters that change YAML's structure, and ones it refuses outright.
_YAML_CHARS = (":", "-", "[", "]", "{", "}", "&", "*", "!", "|", ">", "'", '"', "#", "%", "@", "`", "\t", "\n", " ",
               ",", "?", "0", "é", "\x00", "\x07", "\ufeff", "\U0001f600", "${env:", "${", "$${", "<<: ", "!!binary ")
_ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, -1e308, 1e308, float("inf"), float("nan"), 2**64, -(2**63) - 1, 10**100,
    "", "zz", "é\x00", "-5", "1e400", ".nan", "${env:TRM_FUZZ_UNSET}", "${env:", "$${", "${foo}", [], {}, [[[]]],
    {"a": {}}, "127.0.0.1:99999", "[::1]:0", ":0", "0.0.0.0:4317", "http://x:1", "999999999999999999999999h",
    "1h30", "5m5m", "0s", "-1s", "*", "[", "x" * 10_000, dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 12, 0),
    b"\x00\xff", "rules/../../../etc/passwd", "/dev/null", "~",
)
_KEYS = ("receivers", "otlp", "protocols", "grpc", "http", "endpoint", "processors", "latency", "window", "slo",
         "default", "p95_ms", "exporters", "debug", "otlp/x", "storage", "path", "retention", "api", "auth", "tokens",
         "token", "tenant", "role", "alerting", "route", "receiver", "receivers", "rule_files", "service",
         "pipelines", "traces", "queue", "max_pending_items", "tls", "insecure", "x", "", "<<", 1, None, True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``otel-config/daemon`` (relative rule files resolve), where mutated files are written."""
    directory = tmp_path_factory.mktemp("configs")
    shutil.copytree(ROOT / "otel-config" / "daemon", directory, dirs_exist_ok=True)
    return directory


def load(path: Path) -> None:
    """``load_config`` must answer with a config or one :class:`ConfigError` naming where."""
    try:
        load_config(path)
    except ConfigError as err:
        assert err.problems
        assert all(isinstance(where, str) and isinstance(what, str) and what for where, what in err.problems)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _mutated_text(text: str, ch: DataChooser) -> str:
    chars = list(text)
    for _ in range(ch.integer(1, 8)):
        op = ch.choice(("delete", "insert", "duplicate", "truncate"))
        at = ch.integer(0, len(chars))
        if op == "delete" and chars:
            del chars[at : at + ch.integer(1, 10)]
        elif op == "insert":
            chars[at:at] = ch.choice(_YAML_CHARS)
        elif op == "duplicate" and chars:
            start = ch.integer(0, len(chars) - 1)
            chars[at:at] = chars[start : start + ch.integer(1, 120)]
        elif op == "truncate":
            del chars[at:]
    return "".join(chars)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*path, index)))
    return found


def _mutated_document(document: Any, ch: DataChooser) -> Any:
    for _ in range(ch.integer(1, 4)):
        path = ch.choice(_paths(document))
        if not path:
            document = copy.deepcopy(ch.choice(_ODD_VALUES))  # never the shared constant: later rounds edit it
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = ch.choice(("value", "value", "key", "drop"))
        if action == "value":
            parent[path[-1]] = copy.deepcopy(ch.choice(_ODD_VALUES))
        elif action == "key" and isinstance(parent, dict):
            parent[ch.choice(_KEYS)] = copy.deepcopy(ch.choice(_ODD_VALUES))
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
    return document


@fuzz_settings()
@given(data=st.data())
def test_shipped_configs_broken_as_text(workdir: Path, data: st.DataObject) -> None:
    ch = DataChooser(data)
    load(write(workdir / "fuzzed.yaml", _mutated_text(ch.choice(_TEXTS), ch)))


@fuzz_settings()
@given(data=st.data())
def test_shipped_configs_with_odd_values(workdir: Path, data: st.DataObject) -> None:
    ch = DataChooser(data)
    document = _mutated_document(copy.deepcopy(ch.choice(_DOCUMENTS)), ch)
    try:
        text = yaml.safe_dump(document, allow_unicode=ch.choice((True, False)))
    except yaml.YAMLError:
        text = None
    if text is not None:
        load(write(workdir / "fuzzed.yaml", text))
    try:
        parse_config(document)
    except ConfigError:
        pass


_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.sampled_from(_ODD_VALUES[:40]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=40,
)


@fuzz_settings()
@given(document=st.dictionaries(st.sampled_from(_KEYS[:40]), _YAML_VALUES, max_size=6))
def test_arbitrary_documents(workdir: Path, document: dict[Any, Any]) -> None:
    load(write(workdir / "fuzzed.yaml", yaml.safe_dump(document)))


@fuzz_settings()
@given(text=st.text(max_size=300))
def test_arbitrary_text(workdir: Path, text: str) -> None:
    load(write(workdir / "fuzzed.yaml", text))


@fuzz_settings()
@given(data=st.data())
def test_mutated_rule_files(workdir: Path, data: st.DataObject) -> None:
    """Rule files are loaded (and every ``expr`` parsed) by ``load_config``: a bad one is a ConfigError too."""
    ch = DataChooser(data)
    text = _RULES_TEXT
    if ch.choice((True, False)):
        text = _mutated_text(text, ch)
    else:
        text = yaml.safe_dump(_mutated_document(yaml.safe_load(text), ch))
    write(workdir / "fuzzed-rules.yaml", text)
    config = {
        "alerting": {
            "rule_files": ["fuzzed-rules.yaml"],
            "route": {"receiver": "hook"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": "http://127.0.0.1:9/"}]}],
        }
    }
    load(write(workdir / "fuzzed.yaml", yaml.safe_dump(config)))


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_every_source_loads_or_fails_cleanly(workdir: Path, source: Path) -> None:
    """The fuzz starts from these: each is valid, or invalid only in the ways its name says."""
    load(write(workdir / "fuzzed.yaml", source.read_text(encoding="utf-8")))
