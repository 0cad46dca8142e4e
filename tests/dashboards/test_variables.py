"""Variables in targets: where a reference stands decides how its values are written."""

from __future__ import annotations

from typing import Any

import pytest

from trm_otel.dashboards import ALL, DashboardError, bind, load_dashboard, substitute
from trm_otel.dashboards.variables import label_values_query, references, substitute_expr
from trm_otel.query import parse_query

D = "traces.span.metrics.duration"


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        (f'p95({D}{{service.name="$service"}})', {"service": ["shop"]}, f'p95({D}{{service.name="shop"}})'),
        (f'p95({D}{{service.name="${{service}}"}})', {"service": ["shop"]}, f'p95({D}{{service.name="shop"}})'),
        (f'p95({D}{{service.name=~"$service"}})', {"service": ["shop"]}, f'p95({D}{{service.name=~"shop"}})'),
        # several values: an alternation in a regex matcher ...
        (f'p95({D}{{service.name=~"$service"}})', {"service": ["shop", "cart"]}, f'p95({D}{{service.name=~"shop|cart"}})'),
        (f'p95({D}{{service.name!~"$service"}})', {"service": ["a", "b"]}, f'p95({D}{{service.name!~"a|b"}})'),
        # ... grouped when part of a longer pattern ...
        (f'p95({D}{{span.name=~"GET ${{route}}.*"}})', {"route": ["/a", "/b"]}, f'p95({D}{{span.name=~"GET (?:/a|/b).*"}})'),
        # ... and "=" becomes "=~" when the variable is the whole value
        (f'p95({D}{{service.name="$service"}})', {"service": ["shop", "cart"]}, f'p95({D}{{service.name=~"shop|cart"}})'),
        (f'p95({D}{{service.name != "$service"}})', {"service": ["a", "b"]}, f'p95({D}{{service.name !~ "a|b"}})'),
        # all, values unknown: any value
        (f'p95({D}{{service.name=~"$service"}})', {"service": None}, f'p95({D}{{service.name=~".*"}})'),
        (f'p95({D}{{service.name="$service"}})', {"service": None}, f'p95({D}{{service.name=~".*"}})'),
        # values are label values: regex-escaped in regex matchers, string-escaped everywhere
        (f'p95({D}{{span.name=~"$s"}})', {"s": ["GET /v1.0", "a+b"]}, f'p95({D}{{span.name=~"GET /v1\\\\.0|a\\\\+b"}})'),
        (f'p95({D}{{span.name="$s"}})', {"s": ['say "hi"\\']}, f'p95({D}{{span.name="say \\"hi\\"\\\\"}})'),
        (f"p95({D}{{span.name='$s'}})", {"s": ["it's"]}, f"p95({D}{{span.name='it\\'s'}})"),
        (f"p95({D}{{span.name=~`$s`}})", {"s": ["a.b"]}, f"p95({D}{{span.name=~`a\\.b`}})"),
        # outside strings: the one value as is
        (f"p95({D}[$range]) by ($label)", {"range": ["5m"], "label": ["span.name"]}, f"p95({D}[5m]) by (span.name)"),
        # several matchers and a reference next to an operator
        (
            f'p95({D}{{a="$x", b=~"$y", c="$x"}}) by (span.name)',
            {"x": ["1", "2"], "y": ["3"]},
            f'p95({D}{{a=~"1|2", b=~"3", c=~"1|2"}}) by (span.name)',
        ),
        # not a variable: '$' at the end of a pattern, '$1'
        (f'p95({D}{{span.name=~"/api$", b=~"$1"}})', {}, f'p95({D}{{span.name=~"/api$", b=~"$1"}})'),
    ],
)
def test_substitution(expr: str, values: dict[str, Any], expected: str) -> None:
    result = substitute_expr(expr, values)
    assert result == expected
    parse_query(result)


@pytest.mark.parametrize(
    ("expr", "values", "message"),
    [
        (f'p95({D}{{a="$x"}})', {}, "unknown variable $x (the dashboard has no variables)"),
        (f'p95({D}{{a="$x"}})', {"y": ["1"]}, "unknown variable $x (dashboard variables: y)"),
        (f'p95({D}{{a="$x"}})', {"x": []}, "variable $x has no value selected"),
        (
            f'p95({D}{{a="pre-$x"}})',
            {"x": ["1", "2"]},
            "variable $x can have several values, but in '=' it can stand for only one; make it the whole string or use '=~'",
        ),
        (f"p95({D}) by ($x)", {"x": ["a", "b"]}, "variable $x can have several values; outside a string it can stand for only one"),
        (f"p95({D}{{a=~`$x`}})", {"x": ["a`b"]}, "variable $x: a value containing '`' cannot go into a `backtick` string"),
    ],
)
def test_substitution_errors(expr: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        substitute_expr(expr, values)
    assert str(caught.value) == message


def test_references_know_their_context() -> None:
    refs = references('p95(x{a=~"$s", b = "pre $t", c="x\\"$u"}) by ($l)')
    assert [(r.name, r.quote, r.op, r.whole) for r in refs] == [
        ("s", '"', "=~", True),
        ("t", '"', "=", False),
        ("u", '"', "=", False),
        ("l", None, None, False),
    ]


def dashboard(**variable: Any) -> Any:
    return load_dashboard({
        "uid": "v",
        "title": "V",
        "variables": [{"name": "service", **variable}],
        "panels": [
            {"id": 7, "type": "line", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
             "targets": [{"expr": f'p95({D}{{service.name=~"$service"}})'},
                         {"expr": 'rate(traces.span.metrics.calls{service.name="$service"})'}]},
            {"id": 9, "type": "heatmap", "grid": {"x": 6, "y": 0, "w": 6, "h": 4},
             "targets": [{"expr": f'{D}{{service.name=~"$service"}}'}]},
        ],
    })  # fmt: skip


def test_substitute_a_dashboard_per_panel_with_current_values() -> None:
    d = dashboard(values=["shop", "cart"], current="cart")
    assert substitute(d) == {
        7: [f'p95({D}{{service.name=~"cart"}})', 'rate(traces.span.metrics.calls{service.name="cart"})'],
        9: [f'{D}{{service.name=~"cart"}}'],
    }


def test_substitute_with_the_viewers_choice_and_all() -> None:
    d = dashboard(values=["shop", "cart"], multi=True, include_all=True, current=ALL)
    assert substitute(d)[7] == [f'p95({D}{{service.name=~"shop|cart"}})', 'rate(traces.span.metrics.calls{service.name=~"shop|cart"})']
    assert substitute(d, {"service": ["shop"]})[7][1] == 'rate(traces.span.metrics.calls{service.name="shop"})'
    assert substitute(d, {"service": "cart"})[9] == [f'{D}{{service.name=~"cart"}}']


def test_all_of_a_query_variable_uses_the_looked_up_options_else_any_value() -> None:
    d = dashboard(query="label_values(service.name)", multi=True, include_all=True)
    assert bind(d) == {"service": None}
    assert substitute(d)[9] == [f'{D}{{service.name=~".*"}}']
    assert bind(d, options={"service": ["a", "b"]}) == {"service": ["a", "b"]}
    assert substitute(d, options={"service": ["a", "b"]})[9] == [f'{D}{{service.name=~"a|b"}}']


def test_default_choice_is_the_first_value() -> None:
    assert bind(dashboard(values=["shop", "cart"])) == {"service": ["shop"]}
    assert bind(dashboard(query="label_values(service.name)"), options={"service": ["x"]}) == {"service": ["x"]}


@pytest.mark.parametrize(
    ("variable", "values", "message"),
    [
        ({"query": "label_values(service.name)"}, None, "variables: variable $service has no value: choose one"),
        ({"values": ["a", "b"]}, {"service": ["a", "b"]}, "variables: variable $service takes one value (multi is false), got 2"),
        ({"values": ["a"]}, {"service": ALL}, "variables: variable $service has no 'all' choice (include_all is false)"),
    ],
)
def test_bad_choices(variable: dict[str, Any], values: Any, message: str) -> None:
    with pytest.raises(DashboardError) as caught:
        substitute(dashboard(**variable), values)
    assert str(caught.value) == message


def test_substitution_errors_name_the_target() -> None:
    d = load_dashboard({
        "uid": "v", "title": "V",
        "variables": [{"name": "s", "values": ["a", "b`c"]}, {"name": "r", "values": ["5m", "1h"]}],
        "panels": [{"id": 1, "type": "line", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
                    "targets": [{"expr": f"p95({D}[$r])"}, {"expr": f"p95({D}{{span.name=~`$s`}})"}]}],
    })  # fmt: skip
    assert substitute(d)[1] == [f"p95({D}[5m])", f"p95({D}{{span.name=~`a`}})"]
    assert substitute(d, {"r": "1h"})[1][0] == f"p95({D}[1h])"
    with pytest.raises(DashboardError) as caught:
        substitute(d, {"s": "b`c"})
    assert caught.value.problems == [
        ("panels[0].targets[1].expr", "variable $s: a value containing '`' cannot go into a `backtick` string")
    ]


def test_a_several_valued_variable_outside_a_string_is_refused_at_load() -> None:
    with pytest.raises(DashboardError) as caught:
        load_dashboard({
            "uid": "v", "title": "V", "variables": [{"name": "r", "values": ["5m", "1h"], "multi": True}],
            "panels": [{"id": 1, "type": "line", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
                        "targets": [{"expr": f"p95({D}[$r])"}]}],
        })  # fmt: skip
    assert str(caught.value) == (
        "panels[0].targets[0].expr: variable $r can have several values; outside a string it can stand for only one"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("label_values(service.name)", (None, "service.name")),
        (" label_values( span.name ) ", (None, "span.name")),
        ('label_values(traces.span.metrics.duration{service.name="a,b"}, span.name)',
         ('traces.span.metrics.duration{service.name="a,b"}', "span.name")),
    ],
)  # fmt: skip
def test_label_values(text: str, expected: tuple[str | None, str]) -> None:
    assert label_values_query(text) == expected


@pytest.mark.parametrize("text", ["up", "label_values()", "label_values(x, )", "label_values(, x)", "query_result(up)"])
def test_label_values_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"^expected label_values\(label\) or label_values\(metric\{\.\.\.\}, label\), got "):
        label_values_query(text)
