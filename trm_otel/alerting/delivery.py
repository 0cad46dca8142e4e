"""Sending queued notifications: retries with exponential backoff, every attempt logged.

The worker reads due deliveries from the notification log (so a restart
picks up exactly what was pending), sends each through its integration,
and records the outcome: ``sent``; ``retry`` with the next attempt at
``initial * 2**attempts`` (capped at ``max_interval``, with ±20% jitter so
many failing deliveries do not retry in lockstep); or ``failed`` when the
error is not retryable or ``max_elapsed_time`` has passed since the
delivery was queued. Resolved-only notifications to an integration
without ``send_resolved`` are recorded as ``skipped``; firing ones lose
their resolved alerts for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from trm_otel.alerting.model import DeliveryError, Notifier
from trm_otel.alerting.notify_log import Delivery, NotificationLog

__all__ = ["DeliveryRetry", "DeliveryWorker"]

_logger = logging.getLogger("trm_otel.alerting")


@dataclass(frozen=True, slots=True)
class DeliveryRetry:
    initial_interval_s: float = 1.0
    max_interval_s: float = 60.0
    max_elapsed_s: float = 3600.0
    timeout_s: float = 15.0

    def next_delay(self, attempts: int) -> float:
        base = min(self.max_interval_s, self.initial_interval_s * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)


class DeliveryWorker:
    """Sends what the log says is due; ``wake()`` after queuing to send at once."""

    def __init__(
        self,
        log: NotificationLog,
        notifiers: Mapping[tuple[str, str], Notifier],
        *,
        retry: DeliveryRetry | None = None,
        clock: Callable[[], float] = time.time,
        max_parallel: int = 8,
        tenant: str | None = None,
    ) -> None:
        self.log = log
        self.tenant = tenant
        self.notifiers = dict(notifiers)
        self.retry = retry or DeliveryRetry()
        self.clock = clock
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._slots = asyncio.Semaphore(max_parallel)
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Thread-safe only when called on the worker's loop; use :meth:`wake_threadsafe` elsewhere."""
        self._wake.set()

    def wake_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            now = self.clock()
            due = await asyncio.to_thread(lambda: self.log.due(now, tenant=self.tenant))
            for delivery in due:
                if delivery.id in self._in_flight:
                    continue
                self._in_flight.add(delivery.id)
                task = asyncio.create_task(self._deliver(delivery))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            next_at = await asyncio.to_thread(self.log.next_due_at, self.tenant)
            wait = 0.5 if next_at is None else min(0.5, max(0.01, next_at - self.clock()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def drain(self, timeout_s: float) -> None:
        """Wait for sends in progress (at shutdown); what is still pending stays queued for next start."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                outcome, error, next_at = await self._attempt(delivery)
            await asyncio.to_thread(self.log.attempt, delivery.id, outcome, error, next_attempt_at=next_at)
            if outcome == "failed":
                _logger.error("notification %d to %s/%s failed for good: %s", delivery.id, delivery.receiver,
                              delivery.integration, error)
            elif outcome == "retry":
                _logger.warning("notification %d to %s/%s failed, retrying in %.1fs: %s", delivery.id,
                                delivery.receiver, delivery.integration, (next_at or 0) - self.clock(), error)
        finally:
            self._in_flight.discard(delivery.id)

    async def _attempt(self, delivery: Delivery) -> tuple[str, str | None, float | None]:
        notifier = self.notifiers.get((delivery.receiver, delivery.integration))
        if notifier is None:
            return "failed", f"receiver {delivery.receiver!r} has no integration {delivery.integration!r} any more", None
        notification = delivery.notification
        if not notifier.send_resolved:
            if not notification.firing:
                return "skipped", "resolved-only notification and send_resolved is false", None
            notification = replace(notification, alerts=notification.firing)
        try:
            await asyncio.wait_for(notifier.notify(notification), self.retry.timeout_s)
            return "sent", None, None
        except DeliveryError as err:
            message, retryable = str(err), err.retryable
        except asyncio.TimeoutError:
            message, retryable = f"{notifier.describe()}: no answer within {self.retry.timeout_s:g}s", True
        except Exception as err:  # noqa: BLE001 - a notifier bug must not stop the worker; no str(): may hold secrets
            _logger.error("notifier %s raised %s", notifier.describe(), type(err).__name__)
            message, retryable = f"{notifier.describe()}: internal error ({type(err).__name__})", True
        elapsed = self.clock() - delivery.created_at
        if retryable and elapsed < self.retry.max_elapsed_s:
            return "retry", message, self.clock() + self.retry.next_delay(delivery.attempts + 1)
        return "failed", message, None
