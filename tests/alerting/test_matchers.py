"""Alertmanager's matcher syntax and semantics."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from trm_otel.alerting import matchers as matchers_module
from trm_otel.alerting.matchers import (
    Matcher,
    MatchersField,
    RegexMapField,
    format_matchers,
    matchers_from_maps,
    parse_matchers,
)


def test_exported_names() -> None:
    assert sorted(matchers_module.__all__) == [
        "Matcher",
        "MatchersField",
        "OPERATORS",
        "Op",
        "RegexMapField",
        "format_matchers",
        "matchers_from_maps",
        "parse_matchers",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('foo="bar"', [("foo", "=", "bar")]),
        ('foo=~"a|b"', [("foo", "=~", "a|b")]),
        ("foo!=bar", [("foo", "!=", "bar")]),
        ('foo!~"x.*"', [("foo", "!~", "x.*")]),
        ('{foo="bar", baz=~"x"}', [("foo", "=", "bar"), ("baz", "=~", "x")]),
        ('  { foo = "bar" ,baz!~x }  ', [("foo", "=", "bar"), ("baz", "!~", "x")]),
        ("service.name=checkout", [("service.name", "=", "checkout")]),
        ('k8s-app="web", http.route=~"/api/.*"', [("k8s-app", "=", "web"), ("http.route", "=~", "/api/.*")]),
        ('"odd name"="x"', [("odd name", "=", "x")]),
        ('a="1",', [("a", "=", "1")]),
        ("foo=", [("foo", "=", "")]),
        ('foo=""', [("foo", "=", "")]),
        ('msg="say \\"hi\\"\\nbye \\\\ end"', [("msg", "=", 'say "hi"\nbye \\ end')]),
        ('code=~"5\\d\\d"', [("code", "=~", "5\\d\\d")]),  # unknown escapes keep the backslash
        ('path="a,b}"', [("path", "=", "a,b}")]),
        ("foo=~a{2}", [("foo", "=~", "a{2}")]),
        ("foo=bar baz", [("foo", "=", "bar baz")]),
        ("", []),
        ("{}", []),
        ("{ }", []),
    ],
)
def test_parse_forms(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", "invalid matcher 'foo': expected an operator after label name 'foo' at column 4 (use name=\"value\""),
        ('foo=="x"', "unexpected '=' after operator '=' at column 5"),
        ("a!==b", "unexpected '=' after operator '!=' at column 4"),
        ("a~b", "expected an operator after label name 'a', found '~' at column 2"),
        ('=x', "expected a label name, found '=' at column 1"),
        ('{foo="x"', "missing closing '}'"),
        ('foo="x"}', "missing opening '{'"),
        ('foo="x', "unterminated quoted string at column 5"),
        ('foo="x" bar', "expected ',' after the quoted value, found 'b' at column 9"),
        ('foo=b"a', "unescaped double quote in unquoted value (quote the whole value) at column 6"),
        ('foo=~"a(b"', "invalid regular expression 'a(b': missing ), unterminated subpattern at position 1"),
        ('""="x"', "empty label name"),
    ],
)
def test_parse_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_matchers(text)
    assert message in str(info.value)


def test_regex_is_fully_anchored() -> None:
    api = Matcher("job", "=~", "api")
    assert api.matches({"job": "api"})
    assert not api.matches({"job": "api-gw"})
    assert not api.matches({"job": "my-api"})
    assert Matcher("job", "=~", "api|web").matches({"job": "web"})
    # Python's "$" would accept a trailing newline; the anchoring must not.
    assert not Matcher("job", "=~", "api").matches({"job": "api\n"})
    assert Matcher("job", "!~", "api").matches({"job": "api-gw"})
    assert Matcher("job", "=~", "a|ab").matches({"job": "ab"})  # alternation backtracks to the full match


def test_regex_flavour_is_close_to_re2() -> None:
    assert Matcher("msg", "=~", "(?i)error.*").matches({"msg": "ERROR: disk"})  # a leading flag group works
    assert Matcher("n", "=~", "\\d+").matches({"n": "42"})
    assert not Matcher("n", "=~", "\\d+").matches({"n": "\u0664\u0662"})  # RE2's \d is ASCII only


def test_missing_label_is_the_empty_string() -> None:
    no_team: dict[str, str] = {"alertname": "X"}
    assert Matcher("team", "=", "").matches(no_team)
    assert Matcher("team", "!=", "db").matches(no_team)
    assert Matcher("team", "!~", ".+").matches(no_team)
    assert Matcher("team", "=~", ".*").matches(no_team)
    assert not Matcher("team", "=", "db").matches(no_team)
    assert not Matcher("team", "=~", ".+").matches(no_team)


def test_str_round_trips_and_quotes_only_names_that_need_it() -> None:
    written = [
        Matcher("service.name", "=", "shop"),
        Matcher("odd name", "!=", 'quote " and \\ and\nnewline'),
        Matcher("code", "=~", "5\\d\\d"),
        Matcher("a,b", "!~", ""),
    ]
    assert str(written[0]) == 'service.name="shop"'
    assert str(written[1]) == '"odd name"!="quote \\" and \\\\ and\\nnewline"'
    for matcher in written:
        assert parse_matchers(str(matcher)) == (matcher,)
    assert parse_matchers(format_matchers(written)) == tuple(sorted(written, key=Matcher.sort_key))


def test_format_matchers_uses_alertmanager_order() -> None:
    ms = [Matcher("b", "=", "1"), Matcher("a", "=~", "x"), Matcher("a", "=", "x"), Matcher("a", "!=", "w")]
    assert format_matchers(ms) == '{a!="w",a="x",a=~"x",b="1"}'
    assert format_matchers([]) == "{}"


def test_matcher_construction_checks() -> None:
    with pytest.raises(ValueError, match="unknown matcher operator '=='"):
        Matcher("a", "==", "b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label name must be a non-empty string"):
        Matcher("", "=", "b")
    with pytest.raises(ValueError, match="invalid regular expression '\\['"):
        Matcher("a", "=~", "[")
    assert Matcher.parse('a="1"') == Matcher("a", "=", "1")
    with pytest.raises(ValueError, match="expected exactly one matcher, got 2"):
        Matcher.parse('a="1",b="2"')
    assert Matcher("a", "=~", "x") == Matcher("a", "=~", "x")
    assert len({Matcher("a", "=~", "x"), Matcher("a", "=~", "x")}) == 1


def test_legacy_maps() -> None:
    ms = matchers_from_maps({"severity": "page"}, {"service": "mysql|cassandra"})
    assert ms == (Matcher("severity", "=", "page"), Matcher("service", "=~", "mysql|cassandra"))
    assert matchers_from_maps(None, None) == ()


class _Model(BaseModel):
    matchers: MatchersField = ()
    match_re: RegexMapField = {}


def test_pydantic_field_accepts_alertmanager_forms() -> None:
    model = _Model.model_validate({"matchers": ['a="1"', '{b=~"x", c!=y}', Matcher("d", "!~", "z")]})
    assert [str(m) for m in model.matchers] == ['a="1"', 'b=~"x"', 'c!="y"', 'd!~"z"']
    assert _Model.model_validate({"matchers": "a=1"}).matchers == (Matcher("a", "=", "1"),)
    assert _Model.model_validate({"matchers": None}).matchers == ()
    assert _Model().matchers == ()
    assert model.model_dump()["matchers"] == ['a="1"', 'b=~"x"', 'c!="y"', 'd!~"z"']


def test_pydantic_errors_point_at_the_entry() -> None:
    with pytest.raises(ValidationError) as info:
        _Model.model_validate({"matchers": ['a="1"', "b~1"], "match_re": {"svc": "("}})
    errors = {tuple(e["loc"]): e["msg"] for e in info.value.errors()}
    assert set(errors) == {("matchers", 1), ("match_re", "svc")}
    assert "invalid matcher 'b~1': expected an operator after label name 'b'" in errors[("matchers", 1)]
    assert "invalid regular expression '('" in errors[("match_re", "svc")]
    with pytest.raises(ValidationError, match="expected a matcher string"):
        _Model.model_validate({"matchers": [42]})
