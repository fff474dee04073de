"""How a run is described in its RO-Crate: Workflow Run Crate 0.5, and Provenance Run Crate 0.5
when the run recorded tasks (each task a CreateAction, ordered by a ControlAction per step).

Built with the ``rocrate`` library; files are referenced by path or bytes and only read when the
crate is written, so building the description of 1,000 outputs holds none of them in memory.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rocrate.model import ComputerLanguage, ContextEntity, Person
from rocrate.rocrate import ROCrate
from rocrate.utils import as_list

from flowdeck.backends.checksums import file_checksum
from flowdeck.domain.datasets import DatasetRecord
from flowdeck.domain.runs import RunRecord as StoredRun
from flowdeck.services.runs.attachments import Attachment

WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "provenance": "https://w3id.org/ro/wfrun/provenance/0.5",
}
# flowdeck's workflow types by the names rocrate knows; WDL and the demo engine are described here.
_LANGUAGES = {"CWL": "cwl", "SMK": "snakemake", "GALAXY": "galaxy"}
_OWN_LANGUAGES = {
    "WDL": (
        "https://w3id.org/workflowhub/workflow-ro-crate#wdl",
        "Workflow Description Language",
        "https://openwdl.org/",
    ),
}
_STATUS = {"COMPLETE": "CompletedActionStatus", "CANCELED": "FailedActionStatus"}


@dataclass(frozen=True)
class OutputFile:
    """An output as the run lists it; ``path`` is set when its bytes are at hand (in the run's
    folder, or copied from storage), ``key`` when they are in flowdeck's storage."""

    name: str
    location: str | None
    path: Path | None
    key: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """Everything one crate describes, read beforehand."""

    run: StoredRun
    attachments: list[Attachment]
    tasks: Sequence[Mapping[Any, Any]]
    events: Sequence[Mapping[Any, Any]]
    dataset: DatasetRecord | None
    outputs: list[OutputFile]
    engine_version: str | None
    # the workflow as the engine stores it, when no attachment holds it (a Galaxy workflow)
    workflow_file: Attachment | None = None


def build_crate(records: Sequence[RunRecord], name: str, description: str) -> ROCrate:
    """The crate of one run, or of several runs of one workflow (a request), not yet written.

    Several runs share the workflow, parameter slots, steps and engine; each has its own action,
    values, ``outputs/<run id>/`` and ``events/<run id>.json``.
    """
    crate = ROCrate()
    crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
    crate.name, crate.description = name, description
    workflow = _workflow(crate, records[0])
    folder = len(records) > 1
    for record in records:
        run = record.run
        prefix = f"{run.id}/" if folder else ""
        action = crate.add_action(workflow, identifier=f"#run-{run.id}", properties=_action_properties(run))
        action["agent"] = _agent(crate, run)
        action["object"] = _inputs(crate, workflow, record)
        action["result"] = _outputs(crate, record, f"outputs/{prefix}")
        _events(crate, record, action, f"events/{run.id}.json" if folder else "events.json")
        if record.tasks:
            _provenance(crate, record, workflow, _engine(crate, record), action)
        else:
            _engine(crate, record)
    provenance = ["provenance"] if any(r.tasks for r in records) else []
    _conforms(crate, ["process", "workflow", *provenance])
    return crate


def _conforms(crate: ROCrate, names: Sequence[str]) -> None:
    for name in names:
        profile = ContextEntity(
            crate, PROFILES[name], properties={"@type": "CreativeWork", "name": f"{name} run crate"}
        )
        profile["version"] = "0.5"
        crate.root_dataset.append_to("conformsTo", crate.add(profile))


def _action_properties(run: StoredRun) -> dict[str, Any]:
    props: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"Run {run.id} of {run.workflow_url}",
        "actionStatus": {"@id": f"http://schema.org/{_STATUS.get(run.state, 'FailedActionStatus')}"},
    }
    for key, column in (("startTime", "start_time"), ("endTime", "end_time")):
        if getattr(run, column):
            props[key] = _time(getattr(run, column))
    if run.state != "COMPLETE" and run.error_message:
        props["error"] = run.error_message
    return props


def _time(value: datetime) -> str:
    return value.isoformat()


def _language(crate: ROCrate, run: StoredRun) -> ComputerLanguage | str:
    wf_type = run.workflow_type
    if wf_type in _LANGUAGES:
        return _LANGUAGES[wf_type]
    identifier, name, url = _OWN_LANGUAGES.get(wf_type, (f"#language-{quote(wf_type)}", wf_type, None))
    lang = ComputerLanguage(
        crate, identifier=identifier, properties={"name": name, "version": run.workflow_type_version}
    )
    if url:
        lang["url"] = {"@id": url}
    return crate.add(lang)


def _workflow(crate: ROCrate, record: RunRecord) -> Any:
    """The main workflow (the attachment workflow_url names, else the file its engine exported, else
    a reference: never a local file read by its name, which a DEMO or GALAXY workflow_url could
    point anywhere) and the other attachments beside it."""
    run = record.run
    url = run.workflow_url
    files = {a.name: a for a in record.attachments}
    main = files.pop(url.removeprefix("./"), None) or record.workflow_file
    lang = _language(crate, run)
    props = {"name": Path(url).name or url}
    if main is not None:
        source: Any = io.BytesIO(main.content)
        dest: str | None = f"workflow/{main.name}"
    else:
        # A URI rocrate lists without fetching; a bare name becomes one.
        source, dest = url if "://" in url else f"urn:flowdeck:workflow:{quote(url, safe='')}", None
    workflow = crate.add_workflow(source=source, dest_path=dest, main=True, lang=lang, properties=props)
    for attachment in files.values():
        part = crate.add_file(io.BytesIO(attachment.content), dest_path=f"workflow/{attachment.name}")
        workflow.append_to("hasPart", part)
    return workflow


def _agent(crate: ROCrate, run: StoredRun) -> Any:
    owner, group = run.owner or "anonymous", run.research_group
    person = crate.add(Person(crate, f"#user-{quote(owner)}", properties={"name": owner}))
    if group:
        org = crate.add(
            ContextEntity(crate, f"#group-{quote(group)}", properties={"@type": "Organization", "name": group})
        )
        person["memberOf"] = org
    return person


def _engine(crate: ROCrate, record: RunRecord) -> Any:
    run = record.run
    props = {"@type": "SoftwareApplication", "name": run.workflow_engine or run.backend}
    if record.engine_version and record.engine_version != "unknown":
        props["softwareVersion"] = record.engine_version
    return crate.add(ContextEntity(crate, f"#engine-{quote(run.backend)}", properties=props))


def _inputs(crate: ROCrate, workflow: Any, record: RunRecord) -> list[Any]:
    """Each parameter as a FormalParameter of the workflow and the value it took (a File by
    reference, or a PropertyValue); the run's dataset by reference with its checksum."""
    values = []
    for name, value in record.run.workflow_params.items():
        slot = crate.get(f"#param-{quote(str(name))}")
        if slot is None:
            slot = crate.add_formal_parameter(name, _kind(value), identifier=f"#param-{quote(str(name))}")
            workflow.append_to("input", slot)
        values.append(_value(crate, record.run.id, str(name), value, slot))
    if record.dataset is not None:
        values.append(_dataset(crate, record.dataset))
    return values


def _reference(value: Any) -> str | None:
    """The URI a file-valued parameter points at, or None for a plain value."""
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        value = value.get("location") or value.get("path")
    if not isinstance(value, str):
        return None
    if "://" in value:
        return value
    return f"file://{quote(value)}" if value.startswith("/") else None


def _kind(value: Any) -> str:
    if _reference(value):
        return "Dataset" if isinstance(value, dict) and value.get("class") == "Directory" else "File"
    kinds = {bool: "Boolean", int: "Integer", float: "Float", str: "Text"}
    return kinds.get(type(value), "PropertyValue")


def _value(crate: ROCrate, run_id: str, name: str, value: Any, slot: Any) -> Any:
    uri = _reference(value)
    if uri is not None:
        entity = crate.add(ContextEntity(crate, uri, properties={"@type": "File", "name": name}))
        if _kind(value) == "Dataset":
            entity.type = "Dataset"
    else:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        props = {"@type": "PropertyValue", "name": name, "value": text}
        entity = crate.add(ContextEntity(crate, f"#pv-{quote(run_id)}-{quote(name)}", properties=props))
    entity["exampleOfWork"] = slot
    return entity


def _dataset(crate: ROCrate, row: DatasetRecord) -> Any:
    props: dict[str, Any] = {"@type": "File", "name": row.name, "identifier": row.id}
    if row.checksum and str(row.checksum).startswith("sha256:"):
        props["sha256"] = str(row.checksum).removeprefix("sha256:")
    if row.size is not None:
        props["contentSize"] = str(row.size)
    if row.media_type:
        props["encodingFormat"] = row.media_type
    uri = row.uri or f"#dataset-{quote(row.id)}"
    return crate.add(ContextEntity(crate, uri, properties=props))


def _outputs(crate: ROCrate, record: RunRecord, folder: str) -> list[Any]:
    """Output files, copied into ``folder`` with their SHA-256 and size measured now (the bytes
    the crate holds); those outside the run's folder by reference only."""
    results = []
    taken: set[str] = set()
    for output in record.outputs:
        props: dict[str, Any] = {"name": output.name}
        if output.path is None:
            if output.location and "://" in output.location:
                results.append(crate.add(ContextEntity(crate, output.location, properties={"@type": "File", **props})))
            continue
        props["sha256"] = file_checksum(output.path).removeprefix("sha256:")
        props["contentSize"] = str(output.path.stat().st_size)
        dest = _member(folder, output.name, taken)
        results.append(crate.add_file(output.path, dest_path=dest, properties=props))
    return results


def _member(folder: str, name: str, taken: set[str]) -> str:
    """A zip member name inside ``folder`` for an output name (no '..', no absolute path, no
    two alike: an engine names outputs, and Galaxy datasets are named by their users)."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".", "..")]
    base = folder + ("/".join(parts) or "output")
    member, n = base, 1
    while member in taken:
        n += 1
        member = f"{base}.{n}"
    taken.add(member)
    return member


def _events(crate: ROCrate, record: RunRecord, action: Any, path: str) -> None:
    rows = [
        {k: (_time(v) if isinstance(v, datetime) else v) for k, v in dict(row).items() if k != "request_id"}
        for row in record.events
    ]
    text = json.dumps({"run_id": record.run.id, "events": rows}, indent=2)
    props = {
        "name": "Audit events of the run",
        "description": "Every state change flowdeck recorded for the run: time, kind, from and to state, reason, actor.",
        "encodingFormat": "application/json",
        "about": {"@id": action.id},
    }
    crate.add_file(io.BytesIO(text.encode()), dest_path=path, properties=props)


def _provenance(crate: ROCrate, record: RunRecord, workflow: Any, engine: Any, action: Any) -> None:
    """Provenance Run Crate: a tool and a step per task name, each task a CreateAction of its tool
    ordered by a ControlAction of its step, all organised by the engine."""
    controls = []
    for task in record.tasks:
        tool, step = _step(crate, workflow, task["name"])
        props: dict[str, Any] = {"@type": "CreateAction", "name": task["name"]}
        for key, column in (("startTime", "start_time"), ("endTime", "end_time")):
            if task[column]:
                props[key] = _time(task[column])
        status = "CompletedActionStatus" if task["state"] == "COMPLETE" else "FailedActionStatus"
        props["actionStatus"] = {"@id": f"http://schema.org/{status}"}
        run_id, task_id = quote(record.run.id), quote(task["id"])
        task_action = crate.add_action(tool, identifier=f"#task-{run_id}-{task_id}", properties=props)
        control = ContextEntity(crate, f"#control-{run_id}-{task_id}", properties={"@type": "ControlAction"})
        control["name"] = f"orchestrate {task['name']}"
        control["instrument"] = step
        control["object"] = task_action
        controls.append(crate.add(control))
    organize = ContextEntity(crate, f"#organize-{quote(record.run.id)}", properties={"@type": "OrganizeAction"})
    organize["name"] = f"Run of {engine['name']}"
    organize["instrument"] = engine
    organize["object"] = controls
    organize["result"] = action
    crate.add(organize)


def _step(crate: ROCrate, workflow: Any, name: str) -> tuple[Any, Any]:
    """The tool and step of a task name, made on first use (the runs of a request share them)."""
    known = crate.get(f"#step-{quote(name)}")
    if known is not None:
        return known["workExample"], known
    position = len(as_list(workflow.get("step") or []))
    tool = crate.add(
        ContextEntity(crate, f"#tool-{quote(name)}", properties={"@type": "SoftwareApplication", "name": name})
    )
    workflow.append_to("hasPart", tool)
    step = ContextEntity(crate, f"#step-{quote(name)}", properties={"@type": "HowToStep", "name": name})
    step["position"] = str(position)
    step["workExample"] = tool
    workflow.append_to("step", crate.add(step))
    return tool, step
