"""The ``demo`` backend: simulated runs (seed 002's mock executor).

A SIMULATION, labelled as one in service-info. Each run gets a duration drawn
from ``[demo_min_seconds, demo_max_seconds]`` and succeeds with probability
``demo_success_rate``, both drawn from a generator seeded by ``demo_seed`` and
the run id, so the same run always has the same fate. Three fake steps appear as
tasks. Engine parameters ``duration_seconds`` and ``outcome`` (success|failure)
override the draw, for tests and demos.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flowdeck.backends.base import Backend
from flowdeck.domain.runs import CancelResult, RunHandle, RunSpec, Submitted, SyncReport, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput

STEPS = ("prepare_inputs", "analyse", "write_report")
FAILURES = (
    "Pipeline step 'variant_calling' failed: insufficient memory",
    "Reference genome file not found",
    "Sample quality check failed: low coverage",
    "Workflow execution timeout",
    "Invalid parameter configuration",
)


class DemoBackend(Backend):
    """Simulated execution; no engine, no process."""

    name = "demo"
    workflow_types = {"DEMO": ["1.0"], "CWL": ["v1.0", "v1.1", "v1.2"], "WDL": ["1.0", "1.1"], "SMK": ["9"]}
    is_simulation = True
    engine_parameter_allowlist = frozenset({"duration_seconds", "outcome"})
    validation_blocks = False

    def engine_version(self) -> str:
        return "simulation-1"

    def engine_parameter_defaults(self) -> dict[str, tuple[str, str]]:
        return {"duration_seconds": ("float", "drawn"), "outcome": ("string", "drawn")}

    def validate(self, spec: RunSpec) -> None:
        super().validate(spec)
        params = spec.engine_parameters
        if "outcome" in params and params["outcome"] not in {"success", "failure"}:
            raise InvalidInput("engine parameter outcome must be 'success' or 'failure'")
        if "duration_seconds" in params:
            try:
                seconds = float(params["duration_seconds"])
            except ValueError:
                raise InvalidInput("engine parameter duration_seconds must be a number") from None
            if not 0 <= seconds <= 86400:
                raise InvalidInput("engine parameter duration_seconds must be within 0..86400")

    def submit(self, spec: RunSpec) -> Submitted:
        rng = random.Random(f"{self.settings.demo_seed}:{spec.run_id}")
        low, high = sorted((self.settings.demo_min_seconds, self.settings.demo_max_seconds))
        duration = rng.uniform(low, high)
        succeeds = rng.random() < self.settings.demo_success_rate
        failure = rng.choice(FAILURES)
        params = spec.engine_parameters
        if "duration_seconds" in params:
            duration = float(params["duration_seconds"])
        if "outcome" in params:
            succeeds = params["outcome"] == "success"
        plan = {
            "started": datetime.now(UTC).isoformat(),
            "duration": duration,
            "succeeds": succeeds,
            "failure": failure,
        }
        return Submitted(backend_run_id=f"demo-{spec.run_id}", backend_data=plan, state=State.RUNNING)

    def sync(self, handles: Sequence[RunHandle]) -> list[SyncReport]:
        now = datetime.now(UTC)
        return [self._report(handle, now) for handle in handles]

    def cancel(self, handle: RunHandle) -> CancelResult:
        return CancelResult(confirmed=True, message="simulation stopped")

    def _report(self, handle: RunHandle, now: datetime) -> SyncReport:
        plan = handle.backend_data
        started = datetime.fromisoformat(plan["started"])
        duration = float(plan["duration"])
        done = now >= started + timedelta(seconds=duration)
        tasks = _tasks(started, duration, now, plan["succeeds"])
        if not done:
            return SyncReport(run_id=handle.run_id, state=State.RUNNING, tasks=tasks)
        if plan["succeeds"]:
            outputs: dict[str, Any] = {"simulated": True, "report": f"demo report for run {handle.run_id}"}
            return SyncReport(run_id=handle.run_id, state=State.COMPLETE, tasks=tasks, outputs=outputs, exit_code=0)
        return SyncReport(
            run_id=handle.run_id,
            state=State.EXECUTOR_ERROR,
            reason=str(plan["failure"]),
            tasks=tasks,
            outputs={},
            exit_code=1,
            system_logs=[str(plan["failure"])],
        )


def _tasks(started: datetime, duration: float, now: datetime, succeeds: bool) -> list[TaskInfo]:
    share = duration / len(STEPS)
    tasks: list[TaskInfo] = []
    for index, name in enumerate(STEPS):
        begin = started + timedelta(seconds=share * index)
        end = begin + timedelta(seconds=share)
        if now < begin:
            break
        last = index == len(STEPS) - 1
        if now < end:
            tasks.append(TaskInfo(backend_task_id=str(index), name=name, state=State.RUNNING, start_time=begin))
            break
        failed = last and not succeeds
        tasks.append(
            TaskInfo(
                backend_task_id=str(index),
                name=name,
                state=State.EXECUTOR_ERROR if failed else State.COMPLETE,
                start_time=begin,
                end_time=end,
                exit_code=1 if failed else 0,
            )
        )
    return tasks
