"""The ``miniwdl`` backend: WDL 1.0+ on miniwdl with the bare (no-container) plugin.

miniwdl runs in ``RUNDIR/run/`` (``--dir RUNDIR/run/.``: exactly that folder):
``workflow.log``, ``outputs.json``, ``error.json``, ``out/`` and one
``call-NAME/`` per task (``task.log``, ``stdout.txt``, ``stderr.txt``,
``outputs.json`` or ``error.json``). Inputs are written to
``.flowdeck/inputs.json``.

Containers (docs/adr/0013): with ``settings.containers`` off, miniwdl's bare backend
runs every task on the host (in the run's sandbox) and a ``runtime`` image is ignored.
With it on, a document whose tasks name an image (``runtime { docker: … }`` or
``container:``) runs on miniwdl's podman backend through flowdeck's podman wrapper, every
task in a container (one without an image in :data:`DEFAULT_IMAGE`), without network
unless allowed; the images, read with miniwdl's parser, are checked at submit.

At submit the document is loaded with miniwdl's own parser (about 0.3 s),
reading imports only from the attachments; inputs are checked against the
workflow's declared inputs (unknown names, missing required ones), and every
``File``/``Directory`` input must be an attachment or a URL. Containers stay
off (``MINIWDL__SCHEDULER__CONTAINER_BACKEND=bare``) unless ``settings.containers``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.backends.local.containers import check_images, podman_env
from flowdeck.backends.local.engine import LocalEngineBackend
from flowdeck.backends.local.engine_options import Option, engine_args
from flowdeck.backends.local.launcher import LaunchPlan, control_dir, parse_time
from flowdeck.backends.local.records import read_json, write_json
from flowdeck.backends.local.run_files import attachment, file_time, inside, is_url
from flowdeck.domain.runs import RunSpec, TaskInfo
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput

if TYPE_CHECKING:  # miniwdl is an optional extra: imported only when used
    import WDL

WDL_VERSIONS = ("1.0", "1.1")
# The image of a task without one in a containerised run (set for the run, so the check at
# submit and the run agree whatever an operator's miniwdl.cfg says; miniwdl's own default).
DEFAULT_IMAGE = "ubuntu:22.04"


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


def task_images(document: WDL.Tree.Document) -> tuple[set[str], bool]:
    """The images the tasks of ``document`` and its imports name, and whether a task names none.

    A ``container`` (WDL 1.1) wins over ``docker`` and of a list the first is used, as in
    miniwdl. An image must be a literal string to be checked at submit: one computed from
    inputs is refused (InvalidInput), as are ``inlineDockerfile`` and ``privileged``."""
    images: set[str] = set()
    bare = False
    for task in _all_tasks(document):
        runtime = task.runtime
        for key in ("inlineDockerfile", "privileged"):
            if key in runtime:
                raise InvalidInput(f"task {task.name}: runtime.{key} is not allowed on this service")
        expr = runtime.get("container", runtime.get("docker"))
        if expr is None:
            bare = True
            continue
        images.add(_literal_image(task.name, expr))
    return images, bare


def _all_tasks(document: WDL.Tree.Document) -> list[WDL.Tree.Task]:
    imported = [task for item in document.imports if item.doc is not None for task in _all_tasks(item.doc)]
    return [*document.tasks, *imported]


def _literal_image(task: str, expr: WDL.Expr.Base) -> str:
    import WDL

    value = expr.literal
    if isinstance(value, WDL.Value.Array) and value.value:
        value = value.value[0]
    if not isinstance(value, WDL.Value.String):
        raise InvalidInput(
            f"task {task}: the container image must be a literal string (it is checked at submit), "
            f"not an expression ({expr})"
        )
    return str(value.value)


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
    _loaded: tuple[tuple[str, int], WDL.Tree.Document] | None = None

    @classmethod
    def available(cls) -> bool:
        return super().available() and _has_bare_plugin()

    def check_workflow(self, workflow: str, spec: RunSpec) -> None:
        if not is_url(workflow):
            document = self._load(Path(workflow), spec)
            check_inputs(document, spec.workflow_params, spec)
            self.check_images(document)

    def check_images(self, document: WDL.Tree.Document) -> None:
        """Containers on: every image the tasks need is one podman has (else ValidationFailed)."""
        if not self.settings.containers:
            return
        images, bare = task_images(document)
        if images and bare:
            images.add(DEFAULT_IMAGE)
        notes = {DEFAULT_IMAGE: "the image of the tasks that name none"} if bare else None
        check_images(self.settings, images, notes)

    def container_images(self, spec: RunSpec) -> set[str]:
        """Containers on and a task of the run's (attached) WDL names an image: the images its
        tasks run in (:data:`DEFAULT_IMAGE` too when a task names none)."""
        if not self.settings.containers or is_url(spec.workflow_url):
            return set()
        workflow = inside(spec.attachments_dir / spec.workflow_url, spec.attachments_dir)
        if workflow is None or not workflow.is_file():
            return set()
        images, bare = task_images(self._load(workflow, spec))
        return images | {DEFAULT_IMAGE} if images and bare else images

    def _load(self, workflow: Path, spec: RunSpec) -> WDL.Tree.Document:
        """The document, parsed once per submit (validate, plan and the sandbox choice ask)."""
        key = (str(workflow), workflow.stat().st_mtime_ns)
        loaded = self._loaded
        if loaded is None or loaded[0] != key:
            loaded = self._loaded = (key, load_wdl(workflow, spec.attachments_dir))
        return loaded[1]

    def plan(self, spec: RunSpec, workflow: str, rundir: Path) -> LaunchPlan:
        inputs = spec.workflow_params
        if not is_url(workflow):
            inputs = check_inputs(self._load(Path(workflow), spec), inputs, spec)
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
        if self.uses_containers(spec):
            env = self.podman_env(env, spec)
        else:  # tasks on the host, in the run's sandbox; a runtime image is ignored
            env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = "bare"
        # Measured: SIGTERM to the PID alone orphans the task's processes; to the group, none left.
        return LaunchPlan(argv, env, signal.SIGTERM, cancel_group=True, grace_seconds=30)

    def podman_env(self, env: dict[str, str], spec: RunSpec) -> dict[str, str]:
        """miniwdl's podman backend through flowdeck's wrapper (docs/adr/0013)."""
        env = podman_env(self.settings, env)
        wrapper = str(self.settings.data_dir / "containers" / "bin" / "podman")
        network = self.settings.sandbox_network or spec.pipeline_target.get("network") is True
        return {
            **env,
            "MINIWDL__SCHEDULER__CONTAINER_BACKEND": "podman",
            "MINIWDL__PODMAN__EXE": json.dumps([wrapper]),
            "MINIWDL__TASK_RUNTIME__DEFAULTS": json.dumps({"docker": DEFAULT_IMAGE}),
            # As root there is nothing to give back; otherwise miniwdl would chown in an alpine image.
            "MINIWDL__FILE_IO__CHOWN": "false",
            **({} if network else {"FLOWDECK_PODMAN_NETWORK": "none"}),
        }

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
