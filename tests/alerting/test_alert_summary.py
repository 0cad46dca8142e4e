"""The alert summary: what an evaluation that changes alert states publishes, and to which tenant's streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trm_otel.alerting.config import AlertingConfig
from trm_otel.alerting.service import MAX_SUMMARY_ALERTS, AlertingService, AlertingTenants, _summary
from trm_otel.alerting.silences import Silence
from trm_otel.api.auth import Principal
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.log_counts import LogCounts
from trm_otel.processors.otlp_metrics import OtlpMetricsIngest
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import MemorySource
from trm_otel.tenants import TenantData, Tenants
from trm_otel.ui import StreamHub

from tests.api.test_app import NOW, POLICY, fed_aggregator
from tests.ui.test_stream import open_stream, parse, run

BUSY = {"name": "busy", "interval": "10s", "rules": [{
    "alert": "Busy", "expr": "count(traces.span.metrics.duration[5m]) by (service.name) > 0", "for": "30s",
    "labels": {"severity": "page"}}]}


def tenants() -> Tenants:
    """Tenant ``shop`` has spans of services checkout and search; any other tenant has none."""

    def factory(name: str) -> TenantData:
        aggregator = fed_aggregator() if name == "shop" else LatencyAggregator(window_s=10, clock=lambda: NOW)
        scalars = ScalarSeriesStore(window_s=10, history_s=3600, clock=lambda: NOW)
        source = MemorySource(aggregator, scalars, tenant=name)
        return TenantData(name, aggregator, scalars, LogCounts(window_s=10), OtlpMetricsIngest(aggregator, scalars),
                          source)

    return Tenants(factory)


class Published:
    """``on_change`` that publishes on a hub, remembering each call and how many streams it reached."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        self.calls: list[tuple[str, dict[str, Any], int]] = []

    def __call__(self, tenant: str, summary: dict[str, Any]) -> None:
        self.calls.append((tenant, summary, self.hub.publish_alerts(tenant, summary)))


def alerting(tmp_path: Path, published: Published) -> AlertingTenants:
    data = tenants()
    found = AlertingTenants(AlertingConfig(), data_dir=tmp_path, source=data.source,
                            scalars_of=lambda tenant: data.get(tenant).series, slo=POLICY,
                            tenants=("shop", "bank"), on_change=published)
    for tenant in ("shop", "bank"):
        found(tenant).put_rule_group({**BUSY, "name": f"busy-{tenant}"})
    return found


def test_a_state_change_is_published_to_its_tenants_streams_only(tmp_path: Path) -> None:
    hub = StreamHub()
    published = Published(hub)
    services = alerting(tmp_path, published)
    shop, bank = services("shop"), services("bank")

    async def scenario() -> None:
        shop_stream = await open_stream(hub, Principal("alice", "shop", "viewer"))
        bank_stream = await open_stream(hub, Principal("bob", "bank", "viewer"))

        shop.evaluate_due(NOW)  # both services' counts > 0: pending (for: 30s)
        ((tenant, summary, reached),) = published.calls
        assert (tenant, reached) == ("shop", 1)
        assert (summary["pending"], summary["firing"], summary["suppressed"], summary["truncated"]) == (2, 0, 0, 0)
        assert [(a["alertname"], a["labels"]["service.name"], a["state"]) for a in summary["alerts"]] == [
            ("Busy", "checkout", "pending"), ("Busy", "search", "pending")]
        assert {(a["since"], a["rule"]) for a in summary["alerts"]} == {("2027-01-15T08:00:00.000Z", "busy-shop/Busy")}
        assert summary["alerts"][0]["labels"] == {"alertname": "Busy", "service.name": "checkout", "severity": "page"}
        (event,) = parse(await anext(shop_stream))
        assert event["event"] == "alerts" and event["data"] == summary

        shop.evaluate_due(NOW + 10)  # nothing changed: nothing published
        assert len(published.calls) == 1

        shop.evaluate_due(NOW + 40)  # held for 30 s: firing
        tenant, summary, _ = published.calls[-1]
        assert tenant == "shop" and (summary["firing"], summary["pending"]) == (2, 0)
        assert {a["since"] for a in summary["alerts"]} == {"2027-01-15T08:00:40.000Z"}
        assert parse(await anext(shop_stream))[0]["data"]["firing"] == 2

        bank.evaluate_due(NOW + 40)  # bank's first evaluation: its own (empty) summary, to its stream
        tenant, summary, reached = published.calls[-1]
        assert (tenant, reached) == ("bank", 1)
        assert (summary["firing"], summary["pending"], summary["alerts"]) == (0, 0, [])
        # the first frame bank's stream ever got is its own summary: none of shop's reached it
        (event,) = parse(await anext(bank_stream))
        assert event["data"] == summary and "checkout" not in str(event)

        shop.evaluate_due(NOW + 400)  # the spans are older than 5 m: resolved, so nothing is active
        tenant, summary, _ = published.calls[-1]
        assert tenant == "shop" and (summary["firing"], summary["pending"], summary["alerts"]) == (0, 0, [])
        assert parse(await anext(shop_stream))[0]["data"]["alerts"] == []
        assert [t for t, _, _ in published.calls] == ["shop", "shop", "bank", "shop"]

    run(scenario())


def test_a_silenced_alert_counts_as_suppressed(tmp_path: Path) -> None:
    published = Published(StreamHub())
    shop = alerting(tmp_path, published)("shop")
    shop.evaluate_due(NOW)
    shop.evaluate_due(NOW + 40)
    assert published.calls[-1][1]["firing"] == 2
    silence = Silence.parse({
        "matchers": [{"name": "service.name", "value": "search", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "t", "comment": "c"})
    shop.silences.create_or_update(shop.tenant, silence, now=NOW + 45)
    shop.evaluate_due(NOW + 50)  # the states did not change, but what a viewer should see did
    summary = published.calls[-1][1]
    assert (summary["firing"], summary["suppressed"]) == (1, 1)
    assert [a["state"] for a in summary["alerts"]] == ["firing", "suppressed"]


def test_without_on_change_nothing_is_computed(tmp_path: Path) -> None:
    data = tenants()
    service = AlertingService(AlertingConfig(), data_dir=tmp_path, source=data.source, slo=POLICY, tenant="shop")
    service.put_rule_group(BUSY)
    service.evaluate_due(NOW)
    assert service.alerts_summary(NOW)["pending"] == 2


def test_a_failing_on_change_does_not_stop_alerting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(tenant: str, summary: dict[str, Any]) -> None:
        raise RuntimeError("stream gone")

    data = tenants()
    service = AlertingService(AlertingConfig(), data_dir=tmp_path, source=data.source, slo=POLICY, tenant="shop",
                              on_change=broken)
    service.put_rule_group(BUSY)
    service.evaluate_due(NOW)
    service.evaluate_due(NOW + 40)
    assert [a["state"] for a in service.alerts_json(NOW + 40)] == ["firing", "firing"]
    assert "publishing the alert summary of tenant 'shop' failed" in caplog.text


def test_a_long_list_is_cut_but_the_counts_are_whole() -> None:
    alerts = [{"fingerprint": f"{i:04x}", "rule": "g/A", "labels": {"alertname": "A", "n": str(i)}, "state": "firing",
               "activeAt": "2027-01-15T08:00:00.000Z", "firedAt": "2027-01-15T08:00:00.000Z"}
              for i in range(MAX_SUMMARY_ALERTS + 5)]
    alerts.append({**alerts[0], "fingerprint": "gone", "state": "resolved"})
    summary = _summary(alerts, NOW)
    assert summary["firing"] == MAX_SUMMARY_ALERTS + 5 and summary["truncated"] == 5
    assert len(summary["alerts"]) == MAX_SUMMARY_ALERTS


def test_deleting_the_last_rule_group_resolves_its_alerts(tmp_path: Path) -> None:
    published = Published(StreamHub())
    shop = alerting(tmp_path, published)("shop")
    shop.evaluate_due(NOW)
    shop.evaluate_due(NOW + 40)
    assert published.calls[-1][1]["firing"] == 2
    assert shop.delete_rule_group("busy-shop")
    shop.evaluate_due(NOW + 41)  # no group is left to be due
    assert {a["state"] for a in shop.alerts_json(NOW + 41)} == {"resolved"}
    assert (published.calls[-1][1]["firing"], published.calls[-1][1]["alerts"]) == (0, [])
