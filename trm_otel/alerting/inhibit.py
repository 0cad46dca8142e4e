"""Inhibition: a firing alert holds back notifications about others it explains.

    >>> rule = InhibitRule.model_validate({"source_matchers": ['severity="critical"'],
    ...     "target_matchers": ['severity="warning"'], "equal": ["service.name"]})
    >>> outage = Alert.firing({"alertname": "ShopDown", "severity": "critical", "service.name": "shop"}, {}, 0.0)
    >>> Inhibitor([rule]).inhibited_by({"alertname": "SlowCheckout", "severity": "warning", "service.name": "shop"},
    ...                                [outage]) == outage.fingerprint
    True

Alertmanager's semantics, so its ``inhibit_rules`` can be pasted:

* a rule applies when the target matchers accept the muted alert and some
  *firing* alert passes the source matchers and has the same value for
  every ``equal`` label, where a label missing on both sides counts as
  equal (both are the empty string);
* an alert never inhibits itself, and when the muted alert would also be a
  source, sources that would also be targets are ignored, so two alerts
  cannot silence each other and vanish together;
* the legacy ``source_match`` / ``source_match_re`` / ``target_match`` /
  ``target_match_re`` maps add to the matcher lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import ConfigDict

from trm_otel.alerting.matchers import Matcher, MatchersField, RegexMapField, matchers_from_maps
from trm_otel.alerting.model import Alert, fingerprint
from trm_otel.config_types import StrictModel

__all__ = ["InhibitRule", "Inhibitor"]


class InhibitRule(StrictModel):
    """One ``inhibit_rules`` entry."""

    # YAML reads ``source_match: {code: 500}`` as a number; Alertmanager takes it as the string.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    source_matchers: MatchersField = ()
    target_matchers: MatchersField = ()
    equal: tuple[str, ...] = ()
    source_match: dict[str, str] = {}
    source_match_re: RegexMapField = {}
    target_match: dict[str, str] = {}
    target_match_re: RegexMapField = {}

    @property
    def sources(self) -> tuple[Matcher, ...]:
        return matchers_from_maps(self.source_match, self.source_match_re) + tuple(self.source_matchers)

    @property
    def targets(self) -> tuple[Matcher, ...]:
        return matchers_from_maps(self.target_match, self.target_match_re) + tuple(self.target_matchers)


def _all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


class Inhibitor:
    """Answers "is this alert inhibited, and by which alert?" for a fixed rule set.

    Stateless: the caller passes the currently firing alerts, so the answer
    always reflects the dispatcher's own view and nothing here goes stale.
    """

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = tuple(rules)
        self._compiled = [(r.sources, r.targets, r.equal) for r in self.rules]

    def inhibited_by(self, alert_labels: Mapping[str, str], firing: Iterable[Alert]) -> str | None:
        """The fingerprint of a firing alert that inhibits ``alert_labels``, or ``None``.

        Resolved alerts in ``firing`` are skipped. When several alerts
        qualify, the first in rule order, then in ``firing`` order, wins.
        """
        candidates: list[Alert] | None = None
        own = fingerprint(alert_labels)
        for sources, targets, equal in self._compiled:
            if not _all(targets, alert_labels):
                continue
            if candidates is None:
                candidates = [a for a in firing if a.status == "firing"]
            also_source = _all(sources, alert_labels)
            for source in candidates:
                if source.fingerprint == own or not _all(sources, source.labels):
                    continue
                if any(source.labels.get(n, "") != alert_labels.get(n, "") for n in equal):
                    continue
                if also_source and _all(targets, source.labels):
                    continue
                return source.fingerprint
        return None
