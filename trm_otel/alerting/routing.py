"""The routing tree: which receivers an alert goes to, and with which grouping and timing.

    >>> root = Route(RootRouteConfig.model_validate({
    ...     "receiver": "ops", "group_by": ["alertname"],
    ...     "routes": [{"matchers": ['service.name="shop"'], "receiver": "shop-team", "continue": True},
    ...                {"matchers": ["severity=page"], "receiver": "pager", "group_wait": "10s"}]}))
    >>> [(m.receiver, m.route_key, m.group_wait) for m in root.match({"service.name": "shop", "severity": "page"})]
    [('shop-team', '{}/{service.name="shop"}', 30.0), ('pager', '{}/{severity="page"}', 10.0)]
    >>> group_key(root.match({"alertname": "SlowCheckout"})[0], {"alertname": "SlowCheckout", "pod": "a"})
    '{}:{alertname="SlowCheckout"}'

Alertmanager's configs must route the same here, so its rules are kept:

* matching is depth-first and left to right; a route whose children all
  miss matches itself; the first matching child ends the search among its
  siblings unless that child has ``continue: true``;
* a child inherits every unset setting from its parent (receiver,
  ``group_by``, the three timings, and trm-otel's ``escalation_policy``),
  except ``mute_time_intervals`` / ``active_time_intervals``, which apply to
  the route that names them only, as in Alertmanager;
* ``group_by: ['...']`` groups by every label (one group per alert).

Route keys are Alertmanager's (``{}/{severity="page"}``: each level's
sorted matchers), so group keys in payloads read the same. Alertmanager's
keys are not unique when siblings have the same matchers (a common way to
fan out to two receivers); such routes get Alertmanager's *route id*
instead, which appends the position among siblings (``{}/{}/1``), and
failing that their config path, so a group key always names one route.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pydantic import ConfigDict, Field, field_validator, model_validator

from trm_otel.alerting.matchers import Matcher, MatchersField, RegexMapField, format_matchers, matchers_from_maps
from trm_otel.config_types import Duration, NonNegativeDuration, StrictModel

__all__ = [
    "GROUP_BY_ALL",
    "MatchedRoute",
    "RootRouteConfig",
    "Route",
    "RouteConfig",
    "check_references",
    "group_key",
    "group_labels",
    "receivers_used",
]

#: The ``group_by`` entry meaning "every label".
GROUP_BY_ALL = "..."

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


class RouteConfig(StrictModel):
    """One ``route`` / ``routes[]`` entry as written; ``None`` means "inherit from the parent"."""

    # YAML reads ``match: {code: 500}`` as a number; Alertmanager takes it as the string.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    receiver: str | None = None
    group_by: tuple[str, ...] | None = None
    matchers: MatchersField = ()
    match: dict[str, str] = {}
    match_re: RegexMapField = {}
    continue_: bool = Field(False, alias="continue")
    group_wait: NonNegativeDuration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    #: trm-otel: name of an escalation policy; ``""`` stops an inherited one.
    escalation_policy: str | None = None
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if GROUP_BY_ALL in value and len(value) > 1:
            raise ValueError("'...' groups by all labels and cannot be combined with label names")
        for name, count in Counter(value).items():
            if count > 1:
                raise ValueError(f"label {name!r} is listed twice")
            if not name:
                raise ValueError("label names must not be empty")
        return value

    @property
    def all_matchers(self) -> tuple[Matcher, ...]:
        """``match``, ``match_re`` and ``matchers`` together (all must hold)."""
        return matchers_from_maps(self.match, self.match_re) + tuple(self.matchers)


def _root_problems(config: RouteConfig) -> list[tuple[str, str]]:
    """What the top route may not be, as ``(key under the route, message)``."""
    problems: list[tuple[str, str]] = []
    if not config.receiver:
        message = "the root route must have a receiver (the default for alerts no child route takes)"
        problems.append(("receiver", message))
    for key in ("matchers", "match", "match_re"):
        if getattr(config, key):
            problems.append((key, "the root route must not filter alerts: it receives every alert"))
    for key in ("mute_time_intervals", "active_time_intervals"):
        if getattr(config, key):
            problems.append((key, "the root route cannot be muted or limited in time; set this on a child route"))
    return problems


class RootRouteConfig(RouteConfig):
    """The top ``route``: it catches every alert, so it needs a receiver and may not filter or mute.

    :func:`check_references` applies the same rules, for configs that
    declare the root as a plain :class:`RouteConfig`.
    """

    @model_validator(mode="after")
    def _root_rules(self) -> RootRouteConfig:
        problems = _root_problems(self)
        if problems:
            raise ValueError("; ".join(f"{key}: {message}" for key, message in problems))
        return self


@dataclass(frozen=True, slots=True)
class MatchedRoute:
    """A route's effective settings (inheritance applied), as the dispatcher needs them.

    ``route_key`` identifies the route in group keys; ``path`` is where it is
    written in the config (``route.routes[1]``), for logs and the API.
    """

    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_time_intervals: tuple[str, ...]
    active_time_intervals: tuple[str, ...]
    escalation_policy: str | None
    route_key: str
    path: str


class Route:
    """A node of the routing tree built from a :class:`RouteConfig` (normally the root)."""

    def __init__(self, config: RouteConfig, *, _parent: Route | None = None, _index: int = 0) -> None:
        self.config = config
        self.parent = _parent
        self.matchers = tuple(sorted(config.all_matchers, key=Matcher.sort_key))
        self.continue_ = config.continue_
        self.path = "route" if _parent is None else f"{_parent.path}.routes[{_index}]"
        # Alertmanager's Key() and ID(); the key actually used is chosen once the tree is complete.
        own = format_matchers(self.matchers)
        self._am_key = own if _parent is None else f"{_parent._am_key}/{own}"
        self._am_id = self._am_key if _parent is None else f"{self._am_key}/{_index}"
        self.routes = tuple(Route(c, _parent=self, _index=i) for i, c in enumerate(config.routes))
        self.settings: MatchedRoute
        if _parent is None:
            self._settle()

    def match_root(self) -> MatchedRoute:
        """This route's own settings, whatever the labels (for alerts pinned to a receiver)."""
        return self.settings

    def walk(self) -> Iterator[Route]:
        """This route and all below it, depth first in config order."""
        yield self
        for child in self.routes:
            yield from child.walk()

    def match(self, labels: Mapping[str, str]) -> list[MatchedRoute]:
        """The routes an alert with these labels goes to, in order (empty only if this route misses)."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        found: list[MatchedRoute] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self.settings]

    def _settle(self) -> None:
        nodes = list(self.walk())
        keys = Counter(n._am_key for n in nodes)
        ids = Counter(n._am_id for n in nodes)
        for node in nodes:
            if keys[node._am_key] == 1:
                key = node._am_key
            elif ids[node._am_id] == 1:
                key = node._am_id
            else:
                key = f"{node._am_key}@{node.path}"
            node.settings = node._effective(key)

    def _effective(self, key: str) -> MatchedRoute:
        cfg = self.config
        inherited = self.parent.settings if self.parent is not None else None
        if cfg.group_by is not None:
            group_by_all = cfg.group_by == (GROUP_BY_ALL,)
            group_by = frozenset() if group_by_all else frozenset(cfg.group_by)
        elif inherited is not None:
            group_by, group_by_all = inherited.group_by, inherited.group_by_all
        else:
            group_by, group_by_all = frozenset(), False

        def pick(own: float | None, attr: str, default: float) -> float:
            if own is not None:
                return own
            return getattr(inherited, attr) if inherited is not None else default

        escalation = cfg.escalation_policy
        if escalation is None and inherited is not None:
            escalation = inherited.escalation_policy
        return MatchedRoute(
            receiver=cfg.receiver or (inherited.receiver if inherited is not None else ""),
            group_by=group_by,
            group_by_all=group_by_all,
            group_wait=pick(cfg.group_wait, "group_wait", DEFAULT_GROUP_WAIT),
            group_interval=pick(cfg.group_interval, "group_interval", DEFAULT_GROUP_INTERVAL),
            repeat_interval=pick(cfg.repeat_interval, "repeat_interval", DEFAULT_REPEAT_INTERVAL),
            mute_time_intervals=cfg.mute_time_intervals,
            active_time_intervals=cfg.active_time_intervals,
            escalation_policy=escalation or None,
            route_key=key,
            path=self.path,
        )


def group_labels(route: MatchedRoute, labels: Mapping[str, str]) -> dict[str, str]:
    """The alert's labels named by the route's ``group_by`` (all with ``'...'``); absent ones are left out."""
    return {k: v for k, v in sorted(labels.items()) if route.group_by_all or k in route.group_by}


def group_key(route: MatchedRoute, labels: Mapping[str, str]) -> str:
    """Alertmanager's ``groupKey``: ``{route key}:{group labels}``, e.g. ``{}/{a="1"}:{alertname="X"}``."""
    shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in group_labels(route, labels).items())
    return f"{route.route_key}:{{{shown}}}"


# --- references to names defined elsewhere in the config -----------------------


_PLURAL = {"receiver": "receivers", "time interval": "time intervals", "escalation policy": "escalation policies"}


def _unknown(kind: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif known:
        hint = "known: " + ", ".join(sorted(known))
    else:
        hint = f"no {_PLURAL[kind]} are defined"
    return f"unknown {kind} {name!r} ({hint})"


def check_references(
    route: RouteConfig,
    receivers: set[str],
    time_intervals: set[str],
    escalation_policies: set[str],
    key_path: str = "route",
    *,
    root: bool = True,
) -> list[tuple[str, str]]:
    """Every name in the tree that the config does not define, as ``(key path, message)`` pairs.

    Separate from the models because the names live in sibling sections
    (``receivers``, ``time_intervals``, ``escalation_policies``) that the
    route cannot see; the caller turns the pairs into one ``ConfigError``.
    With ``root`` (the default) the rules of :class:`RootRouteConfig` are
    checked too.
    """
    problems = [(f"{key_path}.{key}", message) for key, message in _root_problems(route)] if root else []
    if route.receiver is not None and route.receiver not in receivers:
        problems.append((f"{key_path}.receiver", _unknown("receiver", route.receiver, receivers)))
    for key in ("mute_time_intervals", "active_time_intervals"):
        for i, name in enumerate(getattr(route, key)):
            if name not in time_intervals:
                problems.append((f"{key_path}.{key}[{i}]", _unknown("time interval", name, time_intervals)))
    if route.escalation_policy and route.escalation_policy not in escalation_policies:
        message = _unknown("escalation policy", route.escalation_policy, escalation_policies)
        problems.append((f"{key_path}.escalation_policy", message))
    for i, child in enumerate(route.routes):
        where = f"{key_path}.routes[{i}]"
        problems.extend(check_references(child, receivers, time_intervals, escalation_policies, where, root=False))
    return problems


def receivers_used(route: RouteConfig) -> Iterable[str]:
    """Receiver names the tree sends to (lets a config warn about unused receivers)."""
    if route.receiver:
        yield route.receiver
    for child in route.routes:
        yield from receivers_used(child)
