"""The daemon config's ``alerting:`` section: Alertmanager's keys, plus rules and escalation.

    alerting:
      evaluation_interval: 15s
      external_url: https://trm.example.com        # links in notifications
      rule_files: [rules/*.yaml]
      route:
        receiver: team
        group_by: [alertname, service.name]
        routes:
          - matchers: ['severity="critical"']
            receiver: pager
            escalation_policy: payments
      receivers:
        - name: team
          webhook_configs: [{url: "http://hooks.internal/alerts"}]
          rate_limit: {max_notifications: 10, per: 10m}
        - name: pager
          email_configs: [{to: oncall@example.com, smarthost: "smtp.example.com:587", from: trm@example.com}]
      inhibit_rules: [...]
      time_intervals: [...]
      escalation_policies: [...]
      notification: {initial_interval: 1s, max_interval: 1m, max_elapsed_time: 1h, timeout: 15s}
      outbound_allowlist: [hooks.slack.com, "*.corp.example", 10.0.0.0/8]   # off when empty

``route``, ``receivers``, ``inhibit_rules`` and ``time_intervals`` (and the
older ``mute_time_intervals``) are Alertmanager's, so the body of an
``alertmanager.yml`` can be pasted under ``alerting:``. Names used across
the section (receivers in routes, rules and escalation steps; time
intervals; policies) are checked here, each problem with its key path.
Without ``route`` every alert goes to a receiver-less root: rules are
evaluated and shown, nothing is sent. ``outbound_allowlist`` (empty: off)
limits where receivers may post: every webhook, Slack, SMS and
Alertmanager URL's host must match an entry (a name, ``*.domain``, or an
IP network), checked when the config loads.
"""

from __future__ import annotations

import difflib
import ipaddress
from urllib.parse import urlsplit
from pydantic import Field

from trm_otel.alerting.escalation import EscalationPolicy
from trm_otel.alerting.inhibit import InhibitRule
from trm_otel.alerting.receivers import ReceiverConfig
from trm_otel.alerting.routing import RootRouteConfig, check_references
from trm_otel.alerting.time_intervals import TimeIntervalList
from trm_otel.config_types import Duration, StrictModel

__all__ = ["AlertingConfig", "NotificationRetryConfig", "NULL_RECEIVER"]

#: The receiver of the implicit root route when no ``route`` is configured.
NULL_RECEIVER = "null"


class NotificationRetryConfig(StrictModel):
    initial_interval: Duration = 1.0
    max_interval: Duration = 60.0
    max_elapsed_time: Duration = 3600.0
    timeout: Duration = 15.0


class AlertingConfig(StrictModel):
    evaluation_interval: Duration = 15.0
    external_url: str = ""
    rule_files: tuple[str, ...] = ()
    route: RootRouteConfig | None = None
    receivers: tuple[ReceiverConfig, ...] = ()
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: TimeIntervalList = ()
    mute_time_intervals: TimeIntervalList = ()
    escalation_policies: tuple[EscalationPolicy, ...] = ()
    notification: NotificationRetryConfig = Field(default_factory=NotificationRetryConfig)
    outbound_allowlist: tuple[str, ...] = ()

    def reference_problems(self) -> list[tuple[str, str]]:
        """Names used but not defined, as ``(key path under alerting, message)``."""
        problems: list[tuple[str, str]] = []
        receivers = [r.name for r in self.receivers]
        problems += _duplicates("receivers", receivers)
        intervals = [t.name for t in (*self.time_intervals, *self.mute_time_intervals)]
        problems += _duplicates("time_intervals", intervals)
        policies = [p.name for p in self.escalation_policies]
        problems += _duplicates("escalation_policies", policies)
        if self.route is not None:
            problems += check_references(self.route, set(receivers), set(intervals), set(policies))
        for index, policy in enumerate(self.escalation_policies):
            for step_index, step in enumerate(policy.steps):
                for name in step.receivers:
                    if name not in receivers:
                        where = f"escalation_policies[{index}].steps[{step_index}].receivers"
                        problems.append((where, _unknown("receiver", name, receivers)))
        problems += self._outbound_problems()
        return problems

    def _outbound_problems(self) -> list[tuple[str, str]]:
        """With ``outbound_allowlist`` set, every URL a receiver posts to must be on it."""
        if not self.outbound_allowlist:
            return []
        problems = []
        for index, receiver in enumerate(self.receivers):
            for section in ("webhook_configs", "slack_configs", "sms_configs", "alertmanager_configs"):
                for position, integration in enumerate(getattr(receiver, section)):
                    for key in ("url", "api_url"):
                        secret = getattr(integration, key, None)
                        if secret is None:
                            continue
                        host = urlsplit(secret.get_secret_value()).hostname or ""
                        if not host_allowed(host, self.outbound_allowlist):
                            problems.append((
                                f"receivers[{index}].{section}[{position}].{key}",
                                f"host {host!r} is not in alerting.outbound_allowlist",
                            ))
        return problems

    def receiver_names(self) -> set[str]:
        return {r.name for r in self.receivers} | ({NULL_RECEIVER} if self.route is None else set())

    def root_route(self) -> RootRouteConfig:
        return self.route if self.route is not None else RootRouteConfig.model_validate({"receiver": NULL_RECEIVER})


def host_allowed(host: str, allowlist: tuple[str, ...]) -> bool:
    """``hooks.slack.com``, ``*.corp.example`` (any subdomain) or a network ``10.0.0.0/8`` / address."""
    host = host.lower().strip("[]")
    for entry in allowlist:
        entry = entry.lower()
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _duplicates(section: str, names: list[str]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for index, name in enumerate(names):
        if name in seen:
            out.append((f"{section}[{index}].name", f"{name!r} is defined twice"))
        seen.add(name)
    return out


def _unknown(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (defined: {', '.join(sorted(known)) or 'none'})"
    return f"unknown {kind} {name!r}{hint}"
