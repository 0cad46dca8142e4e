"""Dashboards as the daemon runs them: stored per tenant, provisioned from files, drawn from data.

    >>> service = DashboardService(DashboardStore(data_dir / DATABASE_NAME), query_source,
    ...                            slo=policy)                                     # doctest: +SKIP
    >>> service.ensure_defaults("default")                                         # doctest: +SKIP
    ['system-overview', 'performance']
    >>> service.provision(config.dashboards.provision, base_dir=config_dir)        # doctest: +SKIP
    >>> service.panel_data("default", "performance", 1, range_="6h")               # doctest: +SKIP
    {'uid': 'performance', 'panel': 1, 'type': 'line', ...}

The one facade the HTTP API and the daemon use; the pieces live in
``store`` (SQLite, versions), ``panel_data`` (queries to the JSON the UI
draws) and ``render`` (PNG). Every method takes the tenant: nothing here
reads or writes across tenants, and another tenant's uid is simply not
found.

Documents in. A body is native JSON or Grafana JSON (the dashboard itself
or Grafana's ``{"dashboard": ..., "meta": ...}``), told apart by
:func:`is_grafana`; native documents of older schema versions are migrated.
Invalid documents raise :class:`~trm_otel.dashboards.errors.DashboardError`
with every problem at its key path.

Defaults. Each tenant is given System Overview and Performance once
(:meth:`DashboardService.ensure_defaults`, at start-up for every known
tenant and on a tenant's first listing); a default the tenant deletes stays
deleted.

Provisioning. ``dashboards.provision`` lists JSON files and directories
(every ``*.json`` below, in name order). At start-up each is loaded into
the tenant ``default``, replacing the stored dashboard of the same uid:
the file is the source of truth, and an edit made in the UI lasts until the
next start. All files are checked before anything is written; problems
name the file and the key path (``dashboards/shop.json: panels[1].grid:
overlaps panels[0]``). Provisioned dashboards are marked by their
``updatedBy`` (``provisioning:<file>``); the API lets only admins change
them, since the change would silently vanish at the next start.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trm_otel.config_types import StrictModel
from trm_otel.dashboards.defaults import default_dashboards
from trm_otel.dashboards.errors import DashboardError
from trm_otel.dashboards.grafana import from_grafana, to_grafana
from trm_otel.dashboards.model import Dashboard, dump_dashboard, load_dashboard
from trm_otel.dashboards.panel_data import ExemplarLookup, PanelReader, TimeWindow, bind_variables, time_window
from trm_otel.dashboards.store import DashboardNotFound, DashboardStore, StoredDashboard, Summary
from trm_otel.query import Limits
from trm_otel.series_source import SeriesSource
from trm_otel.slo import SloPolicy

__all__ = [
    "DEFAULT_TENANT",
    "PROVISIONING",
    "DashboardService",
    "DashboardsConfig",
    "Provisioned",
    "is_grafana",
    "is_provisioned",
    "known_tenants",
    "new_uid",
    "read_document",
    "read_provisioned",
]

_logger = logging.getLogger("trm_otel.dashboards")

#: The tenant provisioned dashboards go to (and every request's tenant when auth is off).
DEFAULT_TENANT = "default"
#: ``updatedBy`` prefix of provisioned dashboards; the file follows it.
PROVISIONING = "provisioning:"
#: ``updatedBy`` of the defaults a tenant is given.
DEFAULTS_BY = "trm-otel (default)"

# Top-level keys only Grafana writes, and keys only its panels carry.
_GRAFANA_KEYS = frozenset({
    "templating", "annotations", "rows", "style", "timezone", "editable", "graphTooltip", "links", "id",
    "fiscalYearStartMonth", "liveNow", "weekStart", "gnetId", "__inputs", "__requires", "__elements",
})
_GRAFANA_PANEL_KEYS = frozenset({"fieldConfig", "datasource", "pluginVersion"})
# Grafana's own schemaVersion started past ours long ago (Grafana 5 wrote 16).
_GRAFANA_MIN_SCHEMA = 6


class DashboardsConfig(StrictModel):
    """The ``dashboards`` config section: ``provision`` lists JSON files and directories."""

    provision: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Provisioned:
    """One provisioned dashboard: where from, stored as which version, and what Grafana import left out."""

    path: str
    uid: str
    version: int
    changed: bool
    unmapped: tuple[str, ...] = ()


def is_provisioned(summary: Summary) -> bool:
    """Whether provisioning wrote the stored version (so the next start overwrites edits)."""
    return summary.updated_by.startswith(PROVISIONING)


def is_grafana(doc: Any) -> bool:
    """Whether ``doc`` is Grafana's dashboard JSON rather than ours.

    Grafana's API wrapper, any key only Grafana writes, a Grafana
    ``schemaVersion``, or a panel with ``fieldConfig``/``datasource``/a
    target ``refId`` (our schema 1 had ``gridPos`` too, but with ``query``).
    """
    if not isinstance(doc, Mapping):
        return False
    if isinstance(doc.get("dashboard"), Mapping) or _GRAFANA_KEYS & doc.keys():
        return True
    version = doc.get("schemaVersion")
    if isinstance(version, int) and not isinstance(version, bool) and version >= _GRAFANA_MIN_SCHEMA:
        return True
    panels = doc.get("panels")
    for panel in panels if isinstance(panels, list) else ():
        if not isinstance(panel, Mapping):
            continue
        if _GRAFANA_PANEL_KEYS & panel.keys() or ("gridPos" in panel and "targets" in panel):
            return True
        targets = panel.get("targets")
        if isinstance(targets, list) and any(isinstance(t, Mapping) and "refId" in t for t in targets):
            return True
    return False


def read_document(doc: Any) -> tuple[Dashboard, list[str], Literal["native", "grafana"]]:
    """``(dashboard, unmapped, format)`` of a native or Grafana document; :class:`DashboardError` if invalid."""
    if is_grafana(doc):
        dashboard, unmapped = from_grafana(doc)
        return dashboard, unmapped, "grafana"
    return load_dashboard(doc), [], "native"


class DashboardService:
    """Dashboards of every tenant: documents, defaults, provisioning, panel data and PNGs. Thread-safe."""

    def __init__(
        self,
        store: DashboardStore,
        source: SeriesSource,
        slo: SloPolicy | None = None,
        clock: Callable[[], float] = time.time,
        *,
        limits: Limits | None = None,
        exemplars: ExemplarLookup | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.exemplars = exemplars  # line and heatmap panels then carry their slowest exemplars
        self.slo = slo
        self.clock = clock
        self.limits = limits
        self._ensured: set[str] = set()

    # ------------------------------------------------------------ documents

    def list(self, tenant: str) -> list[Summary]:
        """The tenant's dashboards by title; the first listing of a tenant gives it the defaults."""
        if tenant not in self._ensured:
            self.ensure_defaults(tenant)
        return self.store.list(tenant)

    def get(self, tenant: str, uid: str) -> StoredDashboard:
        """:class:`~trm_otel.dashboards.store.DashboardNotFound` unless the tenant has it."""
        return self.store.get(tenant, uid)

    def create(self, tenant: str, doc: Any, by: str) -> tuple[str, int]:
        """A new native dashboard (uid generated when absent): ``(uid, 1)``."""
        if isinstance(doc, Mapping) and not doc.get("uid"):
            doc = {**doc, "uid": new_uid()}
        dashboard = load_dashboard(doc)
        return dashboard.uid, self.store.create(tenant, dashboard, by)

    def update(self, tenant: str, uid: str, doc: Any, by: str) -> int:
        """Save an edit of version ``doc["version"]``; the new version, or ``VersionConflict``."""
        if isinstance(doc, Mapping):
            if "version" not in doc:
                raise DashboardError([("version", "required: the version this edit started from (GET returns it)")])
            if doc.get("uid", uid) != uid:
                raise DashboardError([("uid", f"{doc['uid']!r} differs from the dashboard in the path ({uid!r})")])
            doc = {**doc, "uid": uid}
        dashboard = load_dashboard(doc)
        return self.store.update(tenant, uid, dashboard, dashboard.version, by)

    def delete(self, tenant: str, uid: str) -> None:
        if not self.store.delete(tenant, uid):
            raise DashboardNotFound(uid)

    def export(self, tenant: str, uid: str, fmt: str = "native") -> dict[str, Any]:
        """The stored dashboard as native JSON (with its ``version``) or as Grafana JSON."""
        dashboard = self.store.get(tenant, uid).dashboard
        if fmt == "grafana":
            return to_grafana(dashboard)
        if fmt != "native":
            raise ValueError(f"format: expected native or grafana, got {fmt!r}")
        return dump_dashboard(dashboard)

    def import_dashboard(self, tenant: str, doc: Any, by: str, *, overwrite: bool = False) -> tuple[str, int, list[str]]:
        """A native or Grafana document stored: ``(uid, version, unmapped)``.

        Without ``overwrite`` an existing uid is ``DashboardExists``; with
        it the stored dashboard is replaced whatever its version.
        """
        dashboard, unmapped, _ = read_document(doc)
        if overwrite:
            version, _ = self.store.put(tenant, dashboard, by)
        else:
            version = self.store.create(tenant, dashboard, by)
        return dashboard.uid, version, unmapped

    def ensure_defaults(self, tenant: str) -> list[str]:
        """Give ``tenant`` the default dashboards it was never given; the uids created."""
        created = self.store.seed(tenant, default_dashboards(), DEFAULTS_BY)
        self._ensured.add(tenant)
        if created:
            _logger.info("tenant %s: created the default dashboards %s", tenant, ", ".join(created))
        return created

    # --------------------------------------------------------- provisioning

    def provision(self, paths: Sequence[str], *, base_dir: Path | None = None) -> list[Provisioned]:
        """Load every dashboard file of ``paths`` into the tenant ``default``, replacing by uid.

        Nothing is written unless every file is valid (see
        :func:`read_provisioned`, which raises the :class:`DashboardError`).
        """
        done = []
        for name, dashboard, unmapped in read_provisioned(paths, base_dir=base_dir):
            version, changed = self.store.put(DEFAULT_TENANT, dashboard, PROVISIONING + name)
            for note in unmapped:
                _logger.warning("provisioning %s: not carried over from Grafana: %s", name, note)
            done.append(Provisioned(name, dashboard.uid, version, changed, tuple(unmapped)))
        if done:
            _logger.info("provisioned %d dashboards (%d changed)", len(done), sum(p.changed for p in done))
        return done

    # ----------------------------------------------------------------- data

    def window(
        self, dashboard: Dashboard, *, range_: str | None = None, from_: str | None = None, to: str | None = None,
        step: str | None = None,
    ) -> TimeWindow:
        """The time window of a request (parameters as given; ``PanelParameterError`` naming a bad one)."""
        return time_window(dashboard.time, self.clock(), range_=range_, from_=from_, to=to, step=step,
                           min_step_s=self.source.window_s)

    def reader(self, tenant: str) -> PanelReader:
        """A reader for one request: what it fetches is shared by the panels it answers."""
        return PanelReader(self.source, slo=self.slo, tenant=tenant, limits=self.limits, exemplars=self.exemplars)

    def panel_data(
        self,
        tenant: str,
        uid: str,
        panel_id: int,
        *,
        range_: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        step: str | None = None,
        variables: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """One panel's data; see :mod:`~trm_otel.dashboards.panel_data` for the answer and the errors."""
        dashboard = self.store.get(tenant, uid).dashboard
        window = self.window(dashboard, range_=range_, from_=from_, to=to, step=step)
        bound = bind_variables(dashboard, variables or {})
        return self.reader(tenant).panel(dashboard, panel_id, window, bound)

    def render_panel(
        self,
        tenant: str,
        uid: str,
        panel_id: int,
        *,
        range_: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        variables: Mapping[str, Sequence[str]] | None = None,
        theme: str | None = None,
        width: int = 800,
        height: int = 400,
    ) -> bytes:
        """One panel as a PNG, in the dashboard's theme unless ``theme`` says otherwise."""
        from trm_otel.dashboards.render import render_panel

        dashboard = self.store.get(tenant, uid).dashboard
        window = self.window(dashboard, range_=range_, from_=from_, to=to)
        bound = bind_variables(dashboard, variables or {})
        data = self.reader(tenant).panel(dashboard, panel_id, window, bound)
        options = next(p.options for p in dashboard.panels if p.id == panel_id)
        return render_panel(data, theme=theme or dashboard.theme, width=width, height=height, options=options)

    def render_dashboard(
        self,
        tenant: str,
        uid: str,
        *,
        range_: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        variables: Mapping[str, Sequence[str]] | None = None,
        theme: str | None = None,
        width: int = 1200,
    ) -> bytes:
        """The whole dashboard as one PNG; a panel whose query fails shows its error in place."""
        from trm_otel.dashboards.render import render_dashboard

        dashboard = self.store.get(tenant, uid).dashboard
        window = self.window(dashboard, range_=range_, from_=from_, to=to)
        bound = bind_variables(dashboard, variables or {})
        reader = self.reader(tenant)
        data: dict[int, dict[str, Any] | str] = {}
        for panel in dashboard.panels:
            try:
                data[panel.id] = reader.panel(dashboard, panel.id, window, bound)
            except DashboardError as err:
                data[panel.id] = "\n".join(message for _, message in err.problems)
        return render_dashboard(dashboard, data, theme=theme or dashboard.theme, width=width)

    def close(self) -> None:
        self.store.close()


def new_uid() -> str:
    """A fresh uid: 12 URL-safe characters (72 random bits)."""
    return secrets.token_urlsafe(9)


def read_provisioned(
    paths: Sequence[str], *, base_dir: Path | None = None
) -> list[tuple[str, Dashboard, list[str]]]:
    """``(file, dashboard, unmapped)`` of every JSON file ``paths`` name (directories: ``*.json`` below, sorted).

    Reads files only, so ``check-config`` can use it too. Raises one
    :class:`DashboardError` with every problem as ``FILE: key path``
    (``dashboards.provision[i]`` for a path that names nothing), including
    a uid used by two files. Relative paths are read from ``base_dir``
    (the config file's directory), else the working directory.
    """
    problems: list[tuple[str, str]] = []
    loaded: dict[str, tuple[str, Dashboard, list[str]]] = {}
    for index, entry in enumerate(paths):
        files, missing = _files(entry, base_dir)
        if missing:
            problems.append((f"dashboards.provision[{index}]", missing))
        for file in files:
            name = str(file)
            try:
                dashboard, unmapped, _ = read_document(json.loads(file.read_text(encoding="utf-8")))
            except OSError as err:
                problems.append((name, f"cannot read: {err.strerror or err}"))
                continue
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                problems.append((name, f"not valid JSON: {err}"))
                continue
            except DashboardError as err:
                problems.extend((f"{name}: {path}" if path else name, message) for path, message in err.problems)
                continue
            if dashboard.uid in loaded:
                problems.append((f"{name}: uid", f"{dashboard.uid!r} is also the uid of {loaded[dashboard.uid][0]}"))
                continue
            loaded[dashboard.uid] = (name, dashboard, unmapped)
    if problems:
        raise DashboardError(problems)
    return list(loaded.values())


def _files(entry: str, base_dir: Path | None) -> tuple[list[Path], str]:
    """The JSON files an entry names, and a problem when it names nothing."""
    path = Path(entry).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_dir():
        return sorted(p for p in path.rglob("*.json") if p.is_file()), ""
    if path.is_file():
        return [path], ""
    return [], f"no such file or directory: {path}"


def known_tenants(store: DashboardStore, configured: Iterable[str] = ()) -> list[str]:
    """``default``, the tenants of the configured tokens, and every tenant the store knows."""
    return sorted({DEFAULT_TENANT, *configured, *store.tenants()})

