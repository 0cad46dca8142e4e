"""What notifications say: the default templates and the sandbox that renders them.

    >>> from trm_otel.alerting.model import Alert, Notification
    >>> n = Notification("ops", "{}:{alertname=SlowCheckout}", {"alertname": "SlowCheckout"},
    ...                  (Alert.firing({"alertname": "SlowCheckout"}, {"summary": "P95 high"}, 1700000000.0),))
    >>> render(DEFAULT_TITLE, n)
    '[FIRING:1] SlowCheckout'
    >>> render("{{ alerts[0].annotations.summary }}", n)
    'P95 high'

Templates are Jinja2, rendered in an immutable sandbox (config files are
code a reviewer may not read closely; the sandbox keeps a template from
reaching Python internals or changing the notification). HTML is
autoescaped, nothing else is: a Slack or SMS body escaped for HTML would
show ``&amp;``.

A template sees these names (Alertmanager's, in snake_case)::

    status              "firing" | "resolved"
    receiver, group_key
    group_labels, common_labels, common_annotations     dicts, sorted by key
    external_url
    alerts, firing, resolved    lists of alerts, each with
        status, name, labels, annotations, starts_at, ends_at (RFC 3339;
        ends_at "" while firing), generator_url, fingerprint,
        value (float or None), label_text ("k=v, ..." without alertname)
    folded              how many notifications a rate-limit digest replaced
    escalation_step     0, or the escalation step that sent this

plus the filters ``humanize`` (``1234.5 -> 1.234k``) and ``mrkdwn`` (escape
``& < >`` for Slack). Undefined names render empty, as a missing label does
in Alertmanager, so ``{{ common_labels.team }}`` is safe.

Config templates are compiled when the config is loaded
(:data:`Template`, :data:`HtmlTemplate`), so a syntax error is a config
error at its key. A template that compiles but fails while rendering (a
division by zero, a sandbox violation) logs a warning and the default is
used: a broken template must not swallow the alert.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from typing import Annotated, Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import AfterValidator

from trm_otel.alerting.model import Alert, Notification, rfc3339

__all__ = [
    "DEFAULT_HTML",
    "DEFAULT_SLACK_TEXT",
    "DEFAULT_SMS",
    "DEFAULT_TEXT",
    "DEFAULT_TITLE",
    "HtmlTemplate",
    "SMS_DEFAULT_LIMIT",
    "SMS_MAX_LENGTH",
    "Template",
    "check_html_template",
    "check_template",
    "render",
    "template_context",
]

_log = logging.getLogger("trm_otel.alerting.templates")

#: One-line subject: ``[FIRING:2] SlowCheckout shop``.
DEFAULT_TITLE = (
    "{% if escalation_step %}[ESCALATION {{ escalation_step }}] {% endif %}"
    '[{{ status | upper }}{% if status == "firing" %}:{{ firing | length }}{% endif %}] '
    '{{ (group_labels.values() | join(" ")) or common_labels.alertname or receiver }}'
    "{% if folded %} (digest, {{ folded }} folded){% endif %}"
)

#: Plain-text body (email text part, webhook-less integrations).
DEFAULT_TEXT = """\
{% if escalation_step %}
Escalation step {{ escalation_step }}: the previous step was not acknowledged.
{% endif %}
{% if folded %}
{{ folded }} notifications folded into this digest (receiver rate limit).
{% endif %}
{% if folded or escalation_step %}

{% endif %}
{% for title, items in [("Firing", firing), ("Resolved", resolved)] if items %}
{{ title }} ({{ items | length }}):
{% for a in items %}
- {{ a.name or "alert" }}{% if a.label_text %} [{{ a.label_text }}]{% endif %}

{% if a.value is not none %}
  value: {{ a.value | humanize }}
{% endif %}
  since: {{ a.starts_at }}{% if a.ends_at %}, ended: {{ a.ends_at }}{% endif %}

{% for key, text in a.annotations.items() %}
  {{ key }}: {{ text }}
{% endfor %}
{% if a.generator_url %}
  source: {{ a.generator_url }}
{% endif %}
{% endfor %}

{% endfor %}
{% if external_url %}
{{ external_url }}
{% endif %}
"""

#: HTML email body; autoescaped.
DEFAULT_HTML = """\
<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2 style="color: {{ "#b3261e" if status == "firing" else "#1e7b34" }}">{{ title }}</h2>
{% if escalation_step %}
<p><strong>Escalation step {{ escalation_step }}</strong>: the previous step was not acknowledged.</p>
{% endif %}
{% if folded %}
<p>{{ folded }} notifications folded into this digest (receiver rate limit).</p>
{% endif %}
{% for heading, items in [("Firing", firing), ("Resolved", resolved)] if items %}
<h3>{{ heading }} ({{ items | length }})</h3>
<ul>
{% for a in items %}
<li><strong>{{ a.name or "alert" }}</strong>{% if a.label_text %} <code>{{ a.label_text }}</code>{% endif %}
<br>{% if a.value is not none %}value {{ a.value | humanize }}, {% endif %}since {{ a.starts_at }}
{%- if a.ends_at %}, ended {{ a.ends_at }}{% endif %}
{% for key, text in a.annotations.items() %}
<br>{{ key }}: {{ text }}
{% endfor %}
{% if a.generator_url %}
<br><a href="{{ a.generator_url }}">source</a>
{% endif %}
</li>
{% endfor %}
</ul>
{% endfor %}
{% if external_url %}
<p><a href="{{ external_url }}">{{ external_url }}</a></p>
{% endif %}
</body></html>
"""

#: Slack section text (mrkdwn).
DEFAULT_SLACK_TEXT = """\
{% if escalation_step %}
*Escalation step {{ escalation_step }}*: the previous step was not acknowledged.
{% endif %}
{% if folded %}
_{{ folded }} notifications folded into this digest (receiver rate limit)._
{% endif %}
{% for title, items in [("Firing", firing), ("Resolved", resolved)] if items %}
*{{ title }} ({{ items | length }})*
{% for a in items %}
• *{{ (a.name or "alert") | mrkdwn }}*{% if a.label_text %} `{{ a.label_text | mrkdwn }}`{% endif %}
{% if a.value is not none %} value {{ a.value | humanize }}{% endif %}
{% if a.annotations.summary %} {{ a.annotations.summary | mrkdwn }}{% endif %}
{% if a.generator_url %} <{{ a.generator_url | mrkdwn }}|source>{% endif %}

{% endfor %}
{% endfor %}
"""

#: SMS body: one short line, cut to :data:`SMS_DEFAULT_LIMIT` characters.
DEFAULT_SMS = (
    '[{{ status | upper }}{% if status == "firing" %}:{{ firing | length }}{% endif %}] '
    "{% set shown = firing or resolved %}"
    "{% for a in shown[:2] %}{{ a.name }}"
    "{% if a.annotations.summary %}: {{ a.annotations.summary }}{% elif a.label_text %} {{ a.label_text }}{% endif %}"
    "{% if not loop.last %}; {% endif %}{% endfor %}"
    "{% if shown | length > 2 %} (+{{ shown | length - 2 }} more){% endif %}"
    "{% if folded %} ({{ folded }} folded){% endif %}"
)

#: One GSM-7 SMS segment: the default body is cut to this.
SMS_DEFAULT_LIMIT = 160
#: Twilio's limit on a message body: a custom ``text`` is cut to this.
SMS_MAX_LENGTH = 1600


def _humanize(value: Any) -> str:
    """``1234.5 -> '1.234k'``, ``0.00012 -> '120µ'``: Prometheus' ``humanize``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number == 0 or math.isnan(number) or math.isinf(number):
        return f"{number:g}"
    prefixes = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]
    for scale, prefix in prefixes:
        if abs(number) >= scale:
            return f"{number / scale:.4g}{prefix}"
    return f"{number:.4g}"


def _mrkdwn(value: Any) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _environment(*, html: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=html,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["humanize"] = _humanize
    env.filters["mrkdwn"] = _mrkdwn
    return env


_TEXT_ENV = _environment(html=False)
_HTML_ENV = _environment(html=True)


@functools.lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> jinja2.Template:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def _check(source: str, *, html: bool) -> str:
    try:
        _compile(source, html)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"template does not compile: {err.message} (line {err.lineno})") from None
    return source


def check_template(source: str) -> str:
    """Compile a text template now, so a syntax error is a config error at its key."""
    return _check(source, html=False)


def check_html_template(source: str) -> str:
    """Compile an (autoescaped) HTML template now, as :func:`check_template`."""
    return _check(source, html=True)


#: A text template in a config model, compiled when the config is validated.
Template = Annotated[str, AfterValidator(check_template)]
#: An HTML template in a config model, compiled when the config is validated.
HtmlTemplate = Annotated[str, AfterValidator(check_html_template)]


def _sorted(mapping: Mapping[str, str]) -> dict[str, str]:
    return {key: str(mapping[key]) for key in sorted(mapping)}


def _alert_context(alert: Alert) -> dict[str, Any]:
    labels = _sorted(alert.labels)
    return {
        "status": alert.status,
        "name": alert.name,
        "labels": labels,
        "annotations": _sorted(alert.annotations),
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": "" if alert.ends_at is None else rfc3339(alert.ends_at),
        "generator_url": alert.generator_url,
        "fingerprint": alert.fingerprint,
        "value": alert.value,
        "label_text": ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname"),
    }


def template_context(notification: Notification, *, external_url: str = "") -> dict[str, Any]:
    """The names a template sees (see the module docstring), built once per render.

    ``external_url`` is used when the notification carries none.
    """
    alerts = [_alert_context(a) for a in notification.alerts]
    context: dict[str, Any] = {
        "status": notification.status,
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "group_labels": _sorted(notification.group_labels),
        "common_labels": _sorted(notification.common_labels),
        "common_annotations": _sorted(notification.common_annotations),
        "external_url": notification.external_url or external_url,
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved": [a for a in alerts if a["status"] == "resolved"],
        "folded": notification.folded,
        "escalation_step": notification.escalation_step,
    }
    # The HTML body shows the title; render it in the text environment.
    context["title"] = _compile(DEFAULT_TITLE, False).render(context).strip()
    return context


def render(
    source: str,
    notification: Notification,
    *,
    html: bool = False,
    fallback: str | None = None,
    key: str = "template",
    external_url: str = "",
) -> str:
    """Render ``source`` for ``notification``, stripped; on a render-time error, log and use ``fallback``.

    ``key`` names the template in that warning (``slack_configs text``).
    Without a fallback (or when ``source`` is the fallback) the error
    propagates: the defaults are tested and must not fail.
    """
    context = template_context(notification, external_url=external_url)
    try:
        return _compile(source, html).render(context).strip()
    except Exception as err:  # noqa: BLE001 - any template error falls back to the default
        if fallback is None or fallback == source:
            raise
        _log.warning("template %s failed (%s: %s); used the default", key, type(err).__name__, err)
        return _compile(fallback, html).render(context).strip()
