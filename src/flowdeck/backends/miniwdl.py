"""The ``miniwdl`` backend: WDL 1.0+ on miniwdl with the bare (no-container) plugin.

miniwdl runs in ``RUNDIR/run/`` (``--dir RUNDIR/run/.``: exactly that folder):
``workflow.log``, ``outputs.json``, ``error.json``, ``out/`` and one
``call-NAME/`` per task (``task.log``, ``stdout.txt``, ``stderr.txt``,
``outputs.json`` or ``error.json``). Inputs are written to
``.flowdeck/inputs.json``.

At submit the document is loaded with miniwdl's own parser (about 0.3 s),
reading imports only from the attachments; inputs are checked against the
workflow's declared inputs (unknown names, missing required ones), and every
``File``/``Directory`` input must be an attachment or a URL. Containers stay
off (``MINIWDL__SCHEDULER__CONTAINER_BACKEND=bare``) unless ``settings.containers``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.backends.engine_options import Option, engine_args
from flowdeck.backends.launcher import LaunchPlan, control_dir, parse_time, read_json, write_json
from flowdeck.backends.local_engine import LocalEngineBackend
from flowdeck.backends.run_files import attachment, file_time, inside, is_url
from flowdeck.domain.runs import RunSpec, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput

if TYPE_CHECKING:  # miniwdl is an optional extra: imported only when used
    import WDL

WDL_VERSIONS = ("1.0", "1.1")


def load_wdl(path: Path, attachments: Path) -> WDL.Tree.Document:
    """Parse and type-check a WDL document whose imports are all attachments."""
    import WDL

    async def read_source(uri: str, search: list[str], importer: WDL.Tree.Document | None) -> Any:
        base = Path(importer.pos.abspath).parent if importer is not None else attachments
        if is_url(uri) or "://" in uri:
            raise InvalidInput(f"WDL import {uri!r}: only imports among the attachments are allowed")
        target = inside(base / uri, attachments)
        if target is None:
            raise InvalidInput(f"WDL import {uri!r} points outside the run's attachments")
        return await WDL.read_source_default(str(target), [], importer)

    try:
        return WDL.load(str(path), read_source=read_source)
    except WDL.Error.MultipleValidationErrors as exc:
        raise InvalidInput(f"workflow {path.name} is not valid WDL: {exc.exceptions[0]}") from None
    except (WDL.Error.SyntaxError, WDL.Error.ValidationError, WDL.Error.ImportError) as exc:
        if isinstance(exc.__cause__, InvalidInput):  # our own refusal of an import
            raise exc.__cause__ from None
        raise InvalidInput(f"workflow {path.name} is not valid WDL: {exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"workflow {path.name} could not be read as WDL: {exc}") from None


def check_inputs(document: WDL.Tree.Document, params: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    """The inputs with File/Directory paths made absolute attachment paths (or InvalidInput)."""
    target = document.workflow or (document.tasks[0] if len(document.tasks) == 1 else None)
    if target is None:
        raise InvalidInput("the WDL document has no workflow and not exactly one task to run")
    declared = {binding.name: binding.value.type for binding in target.available_inputs}
    required = {binding.name for binding in target.required_inputs}
    checked: dict[str, Any] = {}
    for key, value in params.items():
        name = key.removeprefix(f"{target.name}.")
        if name not in declared:
            raise InvalidInput(f"input {key!r} is not declared by {target.name}")
        checked[key] = _files(value, declared[name], spec, key)
    missing = sorted(required - {key.removeprefix(f"{target.name}.") for key in params})
    if missing:
        raise InvalidInput(f"required inputs missing: {', '.join(missing)}")
    return checked


def _files(value: Any, wdl_type: WDL.Type.Base, spec: RunSpec, key: str) -> Any:
    import WDL

    if isinstance(wdl_type, WDL.Type.File | WDL.Type.Directory) and isinstance(value, str):
        return value if is_url(value) else str(attachment(value, spec, what=f"input {key}"))
    if isinstance(wdl_type, WDL.Type.Array) and isinstance(value, list):
        return [_files(item, wdl_type.item_type, spec, key) for item in value]
    return value


def read_calls(run: Path) -> list[TaskInfo]:
    """One task per ``call-*`` folder that holds a task log (nested sub-workflows too)."""
    tasks: list[TaskInfo] = []
    for log in sorted(run.glob("**/call-*/task.log")):
        folder = log.parent
        relative = folder.relative_to(run)
        name = ".".join(part.removeprefix("call-") for part in relative.parts)
        error = read_json(folder / "error.json")
        done = (folder / "outputs.json").exists()
        state = State.COMPLETE if done else State.EXECUTOR_ERROR if error is not None else State.RUNNING
        cause = (error or {}).get("cause") or {}
        tasks.append(
            TaskInfo(
                backend_task_id=str(relative),
                name=name,
                state=state,
                start_time=_first_time(log),
                end_time=file_time(folder / ("outputs.json" if done else "error.json")),
                exit_code=0 if done else cause.get("exit_status"),
                stdout_path=str(folder / "stdout.txt"),
                stderr_path=str(folder / "stderr.txt"),
            )
        )
    return tasks


def _first_time(log: Path) -> Any:
    try:
        with log.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return None
    return parse_time(first[:23].replace(" ", "T", 1))


class MiniwdlBackend(LocalEngineBackend):
    """WDL 1.0 and 1.1 on miniwdl, without containers by default."""

    name = "miniwdl"
    workflow_types = {"WDL": list(WDL_VERSIONS)}
    command_name = "miniwdl"
    package_name = "miniwdl"
    module_name = "WDL"
    options = {
        "--copy-input-files": Option("--copy-input-files", "flag", default="false"),
        "--no-cache": Option("--no-cache", "flag", default="false"),
        "--as-me": Option("--as-me", "flag", default="false"),
    }

    @classmethod
    def available(cls) -> bool:
        return super().available() and _has_bare_plugin()

    def check_workflow(self, workflow: str, spec: RunSpec) -> None:
        if not is_url(workflow):
            check_inputs(load_wdl(Path(workflow), spec.attachments_dir), spec.workflow_params, spec)

    def plan(self, spec: RunSpec, workflow: str, rundir: Path) -> LaunchPlan:
        inputs = spec.workflow_params
        if not is_url(workflow):
            inputs = check_inputs(load_wdl(Path(workflow), spec.attachments_dir), inputs, spec)
        path = control_dir(rundir) / "inputs.json"
        write_json(path, inputs)
        argv = [
            self.executable() or self.command_name,
            "run",
            workflow,
            "-i",
            str(path),
            "--dir",
            f"{rundir / 'run'}/.",
            "--error-json",
            *engine_args(spec.engine_parameters, self.options),
        ]
        env = self.base_env(rundir)
        if not self.settings.containers:
            env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = "bare"
        # Measured: SIGTERM to the PID alone orphans the task's processes; to the group, none left.
        return LaunchPlan(argv, env, signal.SIGTERM, cancel_group=True, grace_seconds=30)

    def read_tasks(self, rundir: Path) -> list[TaskInfo]:
        return read_calls(rundir / "run")

    def read_outputs(self, rundir: Path) -> dict[str, Any] | None:
        return read_json(rundir / "run" / "outputs.json")

    def failure_reason(self, rundir: Path, exit_code: int) -> str:
        error = read_json(rundir / "run" / "error.json")
        if error is None:
            return super().failure_reason(rundir, exit_code)
        cause = error.get("cause") or error
        if cause.get("error") == "CommandFailed":
            task = str(cause.get("run", "?")).removeprefix("call-")
            return f"miniwdl: task {task} failed with exit code {cause.get('exit_status')}; see the task's stderr"
        message = cause.get("message") or cause.get("error") or error.get("error")
        return f"miniwdl: {message}"


def _has_bare_plugin() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "bare" for ep in entry_points(group="miniwdl.plugin.container_backend"))
