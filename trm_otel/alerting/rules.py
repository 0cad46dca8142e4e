"""Prometheus-shaped alert rule files, validated whole at load.

    groups:
      - name: shop
        interval: 15s                      # optional; else alerting.evaluation_interval
        rules:
          - alert: SlowCheckout
            expr: p95(traces.span.metrics.duration{service.name="shop"}[5m]) > 300
            for: 2m
            keep_firing_for: 1m
            labels: {severity: warning}
            annotations:
              summary: "{{ $labels.service.name }} P95 is {{ $value | humanize }} ms"
            receiver: oncall               # trm-otel extension: bypass the routing tree

Everything a rule can get wrong is found here, before it runs: the
condition's syntax (:mod:`trm_otel.alerting.conditions`), durations,
templates that do not compile, names; unknown receivers are checked
against the alerting config by :func:`reference_problems`. Problems come
as :class:`~trm_otel.errors.ConfigError` pairs located like the daemon's
own config (``rules.yaml:7:13: groups[0].rules[0].expr: 1:5: ...``), so a
bad rule file is refused with every mistake at once and the daemon keeps
running on the rules it had (:class:`RuleBook` swaps only valid sets).

Recording rules (``record:``) are refused with a reason: the query language
already reads every stored series directly.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, field_validator, model_validator

from trm_otel.alerting.conditions import Condition, parse_condition
from trm_otel.alerting.rule_templates import RuleTemplate, compile_template
from trm_otel.config_source import Positions, located, read_yaml
from trm_otel.config_types import Duration, NonNegativeDuration, StrictModel
from trm_otel.errors import ConfigError

__all__ = [
    "AlertRule",
    "LoadedRules",
    "RuleFile",
    "RuleGroup",
    "load_rule_files",
    "parse_rule_group",
    "reference_problems",
]

_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
#: Labels the alerting stages set themselves.
RESERVED_LABELS = ("alertname", "alertstate")


def _template(text: str) -> str:
    compile_template(text)  # raises a ValueError naming the problem
    return text


TemplateText = Annotated[str, AfterValidator(_template)]


class AlertRule(StrictModel):
    """One ``rules[]`` entry; ``condition`` and the compiled templates are built once."""

    alert: str
    expr: str
    for_: NonNegativeDuration = Field(default=0.0, alias="for")
    keep_firing_for: NonNegativeDuration = 0.0
    labels: dict[str, TemplateText] = Field(default_factory=dict)
    annotations: dict[str, TemplateText] = Field(default_factory=dict)
    receiver: str | None = None

    _condition: Condition | None = PrivateAttr(default=None)
    _templates: dict[tuple[str, str], RuleTemplate] = PrivateAttr(default_factory=dict)

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @model_validator(mode="before")
    @classmethod
    def _no_recording_rules(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "record" in data:
            raise ValueError("recording rules (record:) are not supported: query the stored series directly")
        return data

    @field_validator("alert")
    @classmethod
    def _alert_name(cls, value: str) -> str:
        if not _ALERT_NAME.match(value):
            raise ValueError(f"not a valid alert name: {value!r} (letters, digits and _, not starting with a digit)")
        return value

    @field_validator("expr")
    @classmethod
    def _expr(cls, value: str) -> str:
        parse_condition(value)  # QueryError is a ValueError: "1:5: expected ..."
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"not a valid label name: {name!r}")
            if name in RESERVED_LABELS:
                raise ValueError(f"label {name!r} is set by trm-otel itself")
        return value

    @property
    def condition(self) -> Condition:
        if self._condition is None:
            self._condition = parse_condition(self.expr)
        return self._condition

    def template(self, section: str, key: str) -> RuleTemplate:
        found = self._templates.get((section, key))
        if found is None:
            source = self.labels if section == "labels" else self.annotations
            found = self._templates[(section, key)] = compile_template(source[key])
        return found


class RuleGroup(StrictModel):
    """Rules evaluated together, at one interval, in order."""

    name: str = Field(min_length=1)
    interval: Duration | None = None
    rules: tuple[AlertRule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_alerts(cls, rules: tuple[AlertRule, ...]) -> tuple[AlertRule, ...]:
        # An alert is addressed as group/alert (state, API, generator URLs): two of a name would mix.
        seen: set[str] = set()
        for rule in rules:
            if rule.alert in seen:
                raise ValueError(f"alert {rule.alert!r} is defined twice in this group (give them distinct names)")
            seen.add(rule.alert)
        return rules


class RuleFile(StrictModel):
    groups: tuple[RuleGroup, ...] = ()

    @field_validator("groups")
    @classmethod
    def _unique_names(cls, groups: tuple[RuleGroup, ...]) -> tuple[RuleGroup, ...]:
        seen: set[str] = set()
        for group in groups:
            if group.name in seen:
                raise ValueError(f"group name {group.name!r} is used twice in this file")
            seen.add(group.name)
        return groups


@dataclass(frozen=True)
class LoadedRules:
    """Valid groups with where each came from (a file path, or ``api``)."""

    groups: tuple[RuleGroup, ...]
    sources: Mapping[str, str]

    def rules(self) -> Iterable[tuple[RuleGroup, AlertRule]]:
        for group in self.groups:
            for rule in group.rules:
                yield group, rule


def _validate(model: type[RuleFile] | type[RuleGroup], data: Any, source: str, positions: Positions | None,
              key_path: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = list(ConfigError.from_validation_error(err, key_path, model).problems)
        raise ConfigError(located(problems, source, positions)) from None


def load_rule_files(paths: Iterable[str | Path], *, base_dir: Path | None = None) -> LoadedRules:
    """Every group of every file (globs allowed, as Prometheus' ``rule_files``); all problems at once."""
    groups: list[RuleGroup] = []
    sources: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for path in _expand_globs(paths, base_dir):
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
            data, positions, duplicates = read_yaml(text, source)
            if duplicates:
                raise ConfigError(located([(".".join(map(str, loc)), m) for loc, m in duplicates], source, positions))
            parsed: RuleFile = _validate(RuleFile, data or {}, source, positions)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        except OSError as err:
            problems.append((source, f"cannot read the rule file: {err.strerror or err}"))
            continue
        for group in parsed.groups:
            if group.name in sources:
                problems.append((source, f"group {group.name!r} is also defined in {sources[group.name]}"))
                continue
            sources[group.name] = source
            groups.append(group)
    if problems:
        raise ConfigError(problems)
    return LoadedRules(tuple(groups), sources)


def _expand_globs(paths: Iterable[str | Path], base_dir: Path | None) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if any(ch in str(path) for ch in "*?["):
            out.extend(sorted(path.parent.glob(path.name)))
        else:
            out.append(path)
    return out


def parse_rule_group(data: Any, *, source: str = "request") -> RuleGroup:
    """One group as the API receives it (JSON or YAML already decoded); ConfigError on problems."""
    if not isinstance(data, Mapping):
        raise ConfigError([(source, "a rule group must be an object with name and rules")])
    return _validate(RuleGroup, data, source, None)


def reference_problems(rules: LoadedRules, receivers: Iterable[str]) -> list[tuple[str, str]]:
    """Rules naming a receiver the alerting config does not define (with a suggestion)."""
    known = sorted(set(receivers))
    problems = []
    for group in rules.groups:
        for index, rule in enumerate(group.rules):
            if rule.receiver is not None and rule.receiver not in known:
                close = difflib.get_close_matches(rule.receiver, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (defined: {', '.join(known) or 'none'})"
                where = f"{rules.sources.get(group.name, '')}: groups[{group.name}].rules[{index}].receiver"
                problems.append((where.lstrip(": "), f"unknown receiver {rule.receiver!r}{hint}"))
    return problems
