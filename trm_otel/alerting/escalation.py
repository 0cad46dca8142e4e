"""Escalation policies: who else to tell when nobody acknowledges.

    escalation_policies:
      - name: payments
        steps:
          - {after: 10m, receivers: [team-lead]}
          - {after: 30m, receivers: [head-of-engineering, sms-duty]}
        repeat: 2        # run the steps twice more after the last one

A route names a policy (``escalation_policy: payments``, inherited by its
children). The clock starts when a group first notifies firing alerts; step
*i* goes out ``after`` that, to its receivers, with the group's firing
alerts nobody has acked. An ack (or every alert resolving) stops it; when an
ack expires with the alert still firing, the clock starts again. With
``repeat: N`` the whole sequence runs N more times, each cycle as long as
the last step's ``after``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from trm_otel.config_types import Duration, StrictModel

__all__ = ["EscalationPolicy", "EscalationStep"]


class EscalationStep(StrictModel):
    after: Duration
    receivers: tuple[str, ...] = Field(min_length=1)


class EscalationPolicy(StrictModel):
    name: str = Field(min_length=1)
    steps: tuple[EscalationStep, ...] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=100)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: tuple[EscalationStep, ...]) -> tuple[EscalationStep, ...]:
        for before, after in zip(steps, steps[1:]):
            if after.after <= before.after:
                raise ValueError(f"step delays must increase (counted from the first notification): "
                                 f"{before.after:g}s then {after.after:g}s")
        return steps

    @property
    def total_steps(self) -> int:
        return len(self.steps) * (self.repeat + 1)

    def due_at(self, anchor: float, index: int) -> tuple[float, EscalationStep, int]:
        """When step ``index`` (0-based, counting repeats) is due, the step, and its 1-based number."""
        cycle, position = divmod(index, len(self.steps))
        step = self.steps[position]
        return anchor + cycle * self.steps[-1].after + step.after, step, position + 1
