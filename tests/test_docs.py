"""The docs stay true: generated references are up to date, every route is documented, links resolve."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _generator(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("generator", "output"),
    [("generate_config_reference", "configuration.md"), ("generate_cli_reference", "cli.md")],
)
def test_generated_reference_is_up_to_date(generator: str, output: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRM_OTEL_API", "http://somewhere-else:9999")  # must not leak into the text
    text = _generator(generator).render()
    committed = (DOCS / output).read_text(encoding="utf-8")
    assert text == committed, f"docs/{output} is out of date: run python docs/{generator}.py"


def test_config_reference_covers_every_section_and_key() -> None:
    from trm_otel.config import DaemonConfig, OtlpExporterConfig

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name in DaemonConfig.model_fields:
        assert f"| `{name}` |" in text
    assert "## `exporters.otlp`" in text
    for name, field in OtlpExporterConfig.model_fields.items():
        assert f"| `{field.alias or name}` |" in text
    assert "| `window` | duration | `10s` |" in text


def _served_routes() -> set[str]:
    """``"METHOD /path"`` for every route of the API app, its optional parts, the UI and OTLP/HTTP."""
    from starlette.routing import Route

    from trm_otel.api import ApiContext, build_api_app
    from trm_otel.api.dashboards import dashboard_routes
    from trm_otel.processors.aggregation import LatencyAggregator
    from trm_otel.receivers import build_http_app
    from trm_otel.slo import SloPolicy
    from trm_otel.ui.routes import ui_routes
    from trm_otel.ui.stream import StreamHub

    context = ApiContext(
        aggregator=LatencyAggregator(), slo=SloPolicy(), ready=lambda: True, health=dict, self_metrics=list,
        version="docs", alerting=lambda tenant: None, audit=object(),
    )
    routes: list[Any] = [*build_api_app(context).routes, *dashboard_routes(object()), *ui_routes(StreamHub())]
    routes += build_http_app(object(), max_age_s=60).routes  # type: ignore[arg-type]
    served = set()
    for route in routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in sorted(route.methods or {"POST"}):
            if method != "HEAD":
                served.add(f"{method} {path}")
    return served


def test_api_reference_documents_every_route() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    headings = [h for line in text.splitlines() if line.startswith("### ") for h in re.findall(r"`([A-Z]+ /[^`]*)`", line)]
    served = _served_routes()
    assert sorted(served - set(headings)) == [], "routes missing from docs/api.md"
    assert sorted(set(headings) - served) == [], "docs/api.md documents routes nobody serves"


def test_guide_and_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## User guide\n", 1)
    assert len(section) == 2 and "\n## " not in section[1], "README.md ends with its '## User guide' section"
    pages = {"README.md": readme, **{f"docs/{p.name}": p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")}}
    for page, text in pages.items():
        base = (ROOT / page).parent
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (base / target).exists(), f"{page} links to {target}, which does not exist"
    for doc in ("guide.md", "configuration.md", "api.md", "cli.md"):
        assert f"docs/{doc}" in section[1]
