"""Custom health checks next to the host thresholds, from the in-process Telemetry handle.

Shows ``telemetry.register_health_check(name, fn, timeout_s, critical)``:
a plain check returning ``(ok, detail)`` (a SQLite ping), an ``async`` one,
and a non-critical one that hangs past its time-out. ``telemetry.health()``
runs them all at once, waits no longer than the largest time-out, and sums
them up with the host's CPU, memory and disk as healthy, degraded (a
non-critical check failed) or unhealthy (a critical one did).
``health().to_dict()`` is the JSON the daemon serves at ``/api/v1/health``.

Run it with ``python examples/health_check.py``; it needs no daemon.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import trm_otel

database = sqlite3.connect(":memory:", check_same_thread=False)


def database_ping() -> tuple[bool, str]:
    started = time.perf_counter()
    database.execute("select 1").fetchone()
    return True, f"ping {1000 * (time.perf_counter() - started):.2f} ms"


async def cache_ping() -> bool:
    await asyncio.sleep(0.01)  # an async client's round trip
    return True


def recommendations_api() -> bool:
    time.sleep(5)  # a dependency that stopped answering
    return True


def print_report(title: str, telemetry: trm_otel.Telemetry) -> None:
    report = telemetry.health()
    print(f"{title}: {report.status}")
    for check in report.checks:
        kind = "critical" if check.critical else "optional"
        print(f"  {check.name:<20}{check.status:<10}{kind:<9} {check.detail}")


def main() -> None:
    telemetry = trm_otel.configure(service_name="orders", set_global=False)
    telemetry.register_health_check("database", database_ping, timeout_s="1s")
    telemetry.register_health_check("cache", cache_ping, timeout_s="500ms")
    print_report("database and cache", telemetry)

    telemetry.register_health_check("recommendations", recommendations_api, timeout_s="200ms", critical=False)
    print_report("plus a hung optional dependency", telemetry)

    database.close()  # now the critical check raises
    print_report("database closed", telemetry)

    print(json.dumps(telemetry.health().to_dict()["checks"][-3:], indent=2))
    telemetry.shutdown()


if __name__ == "__main__":
    main()
