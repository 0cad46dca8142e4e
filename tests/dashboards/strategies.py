"""Hypothesis strategies for valid native dashboards (shared by the native and Grafana round trips)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from trm_otel.dashboards import Dashboard, Grid, Panel, Target, Variable

def _a_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True


_LABELS = st.sampled_from(["service.name", "span.name", "span.kind", "status.code"])
_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="$"), max_size=8)
_STATS = st.sampled_from(["p50", "p95", "p99", "p999", "avg", "min", "max", "count", "rate", "error_rate", "last",
                          "sum", "apdex"])  # fmt: skip
_METRICS = st.sampled_from(["traces.span.metrics.duration", "traces.span.metrics.calls", "system.cpu.utilization",
                            "system.disk.io", "system.memory.usage", "app.queue.depth"])  # fmt: skip
_MATCHER = st.one_of(
    st.tuples(_LABELS, st.sampled_from(["=", "!="]), _VALUES.map(lambda v: _quote(v))),
    st.tuples(_LABELS, st.sampled_from(["=~", "!~"]), _VALUES.filter(_a_regex).map(lambda v: _quote(v))),
    st.tuples(_LABELS, st.sampled_from(["=", "=~", "!~"]), st.sampled_from(['"$service"', '"${service}"', "`$service`"])),
    st.tuples(_LABELS, st.just("=~"), st.sampled_from(['"pre-$service.*"', "'(a|${service})'"])),
)


@st.composite
def _expr(draw: st.DrawFn, heatmap: bool) -> str:
    matchers = draw(st.lists(_MATCHER, max_size=3))
    text = "{" + ", ".join(f"{k}{op}{v}" for k, op, v in matchers) + "}" if matchers else ""
    rng = draw(st.sampled_from(["", "[1m]", "[5m]", "[1h30m]", "[90]"]))
    if heatmap:
        return f"traces.span.metrics.duration{text}{rng}"
    by = draw(st.lists(_LABELS, unique=True, max_size=2))
    return f"{draw(_STATS)}({draw(_METRICS)}{text}{rng})" + (f" by ({', '.join(by)})" if by else "")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def dashboards(draw: st.DrawFn) -> Dashboard:
    panels = []
    y = 0
    for pid in range(1, draw(st.integers(0, 5)) + 1):
        kind = draw(st.sampled_from(["line", "bar", "pie", "scatter", "heatmap", "stat", "table"]))
        x, w = draw(st.integers(0, 11).flatmap(lambda x: st.tuples(st.just(x), st.integers(1, 12 - x))))
        h = draw(st.integers(1, 10))
        targets = draw(st.lists(st.tuples(_expr(kind == "heatmap"), st.sampled_from(["", "{{span.name}}", "P95"])),
                                max_size=3))  # fmt: skip
        options = draw(st.dictionaries(st.sampled_from(["unit", "min", "max", "stacked"]),
                                       st.one_of(st.integers(-5, 5), st.booleans(), st.sampled_from(["ms", "Bps"]))))  # fmt: skip
        panels.append(Panel(id=pid * 3, title=draw(_VALUES), type=kind, options=options,
                            targets=tuple(Target(expr=e, legend=legend) for e, legend in targets),
                            grid=Grid(x=x, y=y, w=w, h=h)))  # fmt: skip
        y += h + draw(st.integers(0, 2))
    values = draw(st.lists(st.text("abcxyz.-", min_size=1, max_size=5), unique=True, min_size=1, max_size=3))
    multi = draw(st.booleans())
    variable = Variable(name="service", label=draw(st.one_of(st.none(), _VALUES)), values=tuple(values), multi=multi,
                        include_all=True, current=draw(st.sampled_from([None, values[0], "$__all"])))  # fmt: skip
    return Dashboard(
        uid=draw(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)),
        title=draw(_VALUES.filter(str.strip)),
        tags=tuple(draw(st.lists(st.text("abc", min_size=1, max_size=3), max_size=3))),
        time=draw(st.sampled_from([{"from": "now-6h", "to": "now"}, {"from": "now-7d/d", "to": "now/d"},
                                   {"from": "2025-11-30T00:00:00+00:00", "to": "2025-12-01T00:00:00+00:00"}])),  # fmt: skip
        refresh=draw(st.sampled_from(["", "5s", "30s", "1m", "1h"])),
        theme=draw(st.sampled_from(["light", "dark"])),
        variables=(variable,),
        panels=tuple(panels),
        version=draw(st.integers(0, 10**6)),
    )
