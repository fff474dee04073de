"""Run use cases: submit, read, list, cancel, tasks and log files."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DataError, IntegrityError

from flowdeck.backends.base import Backend
from flowdeck.backends.registry import canonical_type
from flowdeck.db import idempotency as key_rows
from flowdeck.db import runs as run_rows
from flowdeck.db import tasks as task_rows
from flowdeck.db.idempotency import KeyRef
from flowdeck.domain import json_values
from flowdeck.domain.filters import RunFilter
from flowdeck.domain.principal import Principal
from flowdeck.domain.run_policy import cancel_request
from flowdeck.domain.runs import RunRecord, RunSpec, RunStatus, RunSummary
from flowdeck.domain.states import State, is_terminal
from flowdeck.errors import InvalidInput, NotFound, Problem, ValidationFailed
from flowdeck.services.auth.guard import group_for_new_object
from flowdeck.services.core import paging, url_policy
from flowdeck.services.core.clock import utcnow
from flowdeck.services.core.context import AppContext
from flowdeck.services.core.group_commit import GroupCommit
from flowdeck.services.core.storage import fetchable_spec
from flowdeck.services.datasets import inputs as dataset_inputs
from flowdeck.services.execution import staging
from flowdeck.services.pipelines.parameters import pointer
from flowdeck.services.runs import quotas, state_machine
from flowdeck.services.runs.attachments import Attachment, RunFolder, check_all, run_folder, safe_name
from flowdeck.settings import Settings

if TYPE_CHECKING:
    from flowdeck.services.runs.call_cache import Decision

# Workflow types whose workflow_url names something inside the engine, not a file.
_NAMED_TYPES = {"GALAXY", "DEMO"}
# What every database stores: PostgreSQL text holds no NUL; sizes of the runs and run_tags columns.
_NUL = "\x00"
_MAX_TAG_KEY = 256
_MAX_GROUP = 128
_Run = TypeVar("_Run", RunRecord, RunStatus)
_Listed = TypeVar("_Listed", RunRecord, RunSummary)


@dataclass
class NewRun:
    """A validated-shape submission, from any door (WES, jobs, requests)."""

    workflow_type: str
    workflow_type_version: str
    workflow_url: str
    workflow_params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    workflow_engine: str | None = None
    workflow_engine_version: str | None = None
    workflow_engine_parameters: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    research_group: str | None = None
    description: str | None = None
    dataset_id: str | None = None
    dataset: dict[str, Any] | None = None
    pipeline_name: str | None = None
    pipeline_version: str | None = None
    pipeline_target: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    request_index: int | None = None
    rerun_of: str | None = None
    resume_from: str | None = None  # an ended run whose finished steps are re-used (jobs.rerun)
    origin: str = "wes"
    workflow_source: str | None = None  # the remote workflow_url the stored workflow was fetched from
    input_datasets: dict[str, str] = field(default_factory=dict)  # input pointer -> dataset id (dataset:<id>)
    use_cached: bool = False  # answer from a completed identical run if there is one (services.call_cache)


def resolve_group(principal: Principal, requested: str | None) -> str | None:
    """The research group a new object belongs to (the one rule, in the auth guard)."""
    return group_for_new_object(principal, requested)


def remote_workflow_schemes(settings: Settings) -> list[str]:
    """The URL schemes a WES workflow_url may use besides attachments (service-info's
    supported_filesystem_protocols): those of the allowed prefixes, and nothing else."""
    return sorted(
        {prefix.split("://", 1)[0].lower() for prefix in settings.allowed_workflow_url_prefixes if "://" in prefix}
    )


def _check_workflow_url(services: AppContext, new: NewRun, wf_type: str) -> None:
    url = new.workflow_url.strip()
    if not url:
        raise InvalidInput("workflow_url is required")
    if wf_type in _NAMED_TYPES:
        return
    names = {a.name for a in new.attachments}
    if "://" not in url:
        relative = url.removeprefix("./")
        if relative not in names:
            raise InvalidInput(
                f"workflow_url {url!r} is not one of the attachments ({', '.join(sorted(names)) or 'none'})"
            )
        return
    allowed = services.settings.allowed_workflow_url_prefixes
    if not any(url.startswith(prefix) for prefix in allowed):
        raise InvalidInput(
            f"workflow_url must be a relative attachment path or start with one of: {', '.join(allowed) or 'nothing'}"
        )


def check_admissible(services: AppContext, new: NewRun) -> tuple[str, Backend]:
    """What a submission, a dry run and a request's first item all check: the sizes of tags and
    description, and an enabled backend that runs ``new``. Returns the canonical workflow type
    and that backend."""
    check_text_limits(services.settings, new.tags, new.description)
    wf_type = canonical_type(new.workflow_type)
    return wf_type, services.backends.choose(wf_type, new.workflow_engine)


def check_text_limits(settings: Settings, tags: Mapping[str, str], description: str | None) -> None:
    """Tags and descriptions are shown on every list page: each has a size limit (settings)."""
    problems = []
    if len(tags) > settings.max_tags:
        problems.append(Problem("/tags", f"at most {settings.max_tags} tags", "maxProperties"))
    limit = settings.max_tag_value_chars
    problems += [
        Problem(pointer(["tags", key]), f"at most {limit} characters", "maxLength")
        for key, value in tags.items()
        if len(value) > limit
    ]
    if description is not None and len(description) > settings.max_description_chars:
        problems.append(Problem("/description", f"at most {settings.max_description_chars} characters", "maxLength"))
    if problems:
        raise ValidationFailed("; ".join(f"{p.pointer}: {p.message}" for p in problems), problems)


def _with_fetched_workflow(settings: Settings, new: NewRun) -> NewRun:
    """``new`` with its remote workflow fetched through the SSRF policy and kept as an attachment:
    engines never fetch a client's URL (and run without network), and the run keeps the very
    workflow it ran. One document is fetched; a workflow that imports neighbours is attached."""
    url = new.workflow_url.strip()
    content = url_policy.fetch(settings, url, what="workflow_url", max_bytes=settings.max_upload_bytes)
    taken = {a.name for a in new.attachments}
    try:
        name = safe_name(url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
    except InvalidInput:
        name = "workflow"
    while name in taken:
        name = f"remote-{name}"
    return replace(
        new, workflow_url=name, attachments=[*new.attachments, Attachment(name, content)], workflow_source=url
    )


async def _engine_check(services: AppContext, backend: Backend, new: NewRun) -> None:
    if new.workflow_engine_version and not new.workflow_engine:
        raise InvalidInput("workflow_engine is required when workflow_engine_version is given")
    if not new.workflow_engine_version:
        return
    # Asked only when pinned, off the event loop and cached: a remote engine's version costs a call.
    version = await asyncio.to_thread(services.backends.engine_version, backend.name)
    if new.workflow_engine_version != version:
        raise InvalidInput(
            f"workflow_engine_version {new.workflow_engine_version!r} is not available; this service runs {version}"
        )


async def submit(services: AppContext, new: NewRun, principal: Principal) -> str:
    """Validate, store attachments, and record the run in QUEUED. Returns its id."""
    _check_storable(new)
    wf_type, backend = check_admissible(services, new)
    versions = backend.workflow_types.get(wf_type, [])
    if new.workflow_type_version not in versions:
        raise InvalidInput(
            f"workflow_type_version {new.workflow_type_version!r} is not supported for {wf_type} on {backend.name}; supported: {', '.join(versions)}"
        )
    await _engine_check(services, backend, new)
    _check_workflow_url(services, new, wf_type)
    if wf_type not in _NAMED_TYPES and "://" in new.workflow_url:
        new = await asyncio.to_thread(_with_fetched_workflow, services.settings, new)
    check_all(new.attachments, services.settings.max_upload_bytes)
    group = resolve_group(principal, new.research_group)
    await quotas.check_stored_bytes(services, group)
    run_id = str(uuid.uuid4())
    folder = run_folder(services.runs_dir, run_id)
    spec = RunSpec(
        run_id=run_id,
        workflow_type=wf_type,
        workflow_type_version=new.workflow_type_version,
        workflow_url=new.workflow_url,
        workflow_params=new.workflow_params,
        workdir=folder.work,
        attachments_dir=folder.attachments,
        engine_parameters=new.workflow_engine_parameters,
        tags=new.tags,
        pipeline_target=new.pipeline_target,
        dataset=new.dataset,
    )
    engine_spec = await fetchable_spec(services.settings, spec)
    inputs = await _inputs_to_stage(services, backend, spec, group, principal)
    new.input_datasets = dataset_inputs.recorded(inputs)
    engine_spec = staging.localized(engine_spec, inputs) if inputs else engine_spec
    if not backend.validation_blocks:
        backend.validate(engine_spec)
        cached = await _consult_cache(services, new, spec, backend.name, group, principal)
        await _store(services, new, spec, backend.name, group, principal, cached)
        return run_id
    # An engine's validation reads the workflow's files (and may parse it: WDL takes a few
    # hundred ms), so they are written to the run's folder first, off the event loop.
    await asyncio.to_thread(_validate_in_folder, backend, engine_spec, folder, new.attachments, inputs)
    try:
        cached = await _consult_cache(services, new, spec, backend.name, group, principal)
        await _store(services, new, spec, backend.name, group, principal, cached)
    except Exception:
        folder.remove()  # not on cancellation: the run may have been committed all the same
        raise
    return run_id


async def _consult_cache(
    services: AppContext, new: NewRun, spec: RunSpec, engine: str, group: str | None, principal: Principal
) -> Decision:
    # Imported here: the call cache reads datasets and results, and those import this module.
    from flowdeck.services.runs import call_cache

    return await call_cache.consult(services, new, spec, engine, group, principal)


async def _inputs_to_stage(
    services: AppContext, backend: Backend, spec: RunSpec, group: str | None, principal: Principal
) -> list[staging.Input]:
    """The inputs the worker will stage for a local engine, refused now where that is knowable."""
    inputs = staging.find(spec) if backend.runs_locally else []
    inputs = await dataset_inputs.resolve(services, inputs, principal)
    if inputs:
        await asyncio.to_thread(staging.check, services.settings, inputs, group)  # resolves https hosts
    return inputs


def _validate_in_folder(
    backend: Backend, spec: RunSpec, folder: RunFolder, attachments: list[Attachment], inputs: list[staging.Input]
) -> None:
    folder.write(attachments)
    staging.placeholders(spec, inputs)
    try:
        backend.validate(spec)
    finally:
        if inputs:
            staging.remove_placeholders(spec)
        # Removed before the run is stored, so no worker has it yet: the worker writes the folder
        # from the database at dispatch, on its own host (the API's host keeps no run folder).
        folder.remove()


def _check_storable(new: NewRun) -> None:
    """Refuse what a database would reject later (a 500, or a run no one can read back)."""
    values = [getattr(new, name) for name in _STORABLE_FIELDS]
    try:
        json_values.check(values)
    except json_values.JsonRefused as exc:
        raise InvalidInput(f"a field holds {exc.reason}{_field_of(exc.pointer)}") from None
    if any(len(key) > _MAX_TAG_KEY for key in new.tags):
        raise InvalidInput(f"tag keys are at most {_MAX_TAG_KEY} characters")
    if new.research_group is not None and len(new.research_group) > _MAX_GROUP:
        raise InvalidInput(f"research_group is at most {_MAX_GROUP} characters")


_STORABLE_FIELDS = (
    "workflow_type",
    "workflow_type_version",
    "workflow_url",
    "workflow_params",
    "tags",
    "workflow_engine",
    "workflow_engine_version",
    "workflow_engine_parameters",
    "research_group",
    "description",
    "dataset_id",
    "pipeline_name",
    "pipeline_version",
)


def _field_of(at: str) -> str:
    """`` in workflow_params at /a/0`` for the pointer ``/3/a/0`` into _check_storable's list."""
    index, _, rest = at.removeprefix("/").partition("/")
    if not index.isdigit() or int(index) >= len(_STORABLE_FIELDS):
        return ""
    return f" in {_STORABLE_FIELDS[int(index)]}" + (f" at /{rest}" if rest else "")


# The Idempotency-Key of the submission under way in this task (services.idempotency sets it):
# the first run it stores is linked to the key in the run's own commit.
IDEMPOTENCY_KEY: ContextVar[KeyRef | None] = ContextVar("IDEMPOTENCY_KEY", default=None)


@dataclass(frozen=True)
class _Accepted:
    """A validated run on its way to the database."""

    rows: run_rows.NewRunRows
    creation: state_machine.Creation
    key: KeyRef | None = None


async def _store(
    services: AppContext,
    new: NewRun,
    spec: RunSpec,
    backend: str,
    group: str | None,
    principal: Principal,
    cached: Decision,
) -> None:
    """Commit the run in QUEUED with its tags, attachments and first event (shared with the
    submissions of the same moment: services.group_commit); a call-cache hit in COMPLETE, at once."""
    now = utcnow()
    values = {
        "id": spec.run_id,
        "request_id": new.request_id,
        "request_index": new.request_index,
        "pipeline_name": new.pipeline_name,
        "pipeline_version": new.pipeline_version,
        "dataset_id": new.dataset_id,
        "research_group": group,
        "owner": principal.name,
        "description": new.description,
        "origin": new.origin,
        "workflow_type": spec.workflow_type,
        "workflow_type_version": new.workflow_type_version,
        "workflow_url": new.workflow_url,
        "workflow_params": new.workflow_params,
        "workflow_engine": new.workflow_engine or backend,
        "workflow_engine_version": new.workflow_engine_version,
        "workflow_engine_parameters": new.workflow_engine_parameters,
        "tags": new.tags,
        "attachments": [a.name for a in new.attachments],
        "backend": backend,
        "backend_data": {},
        "pipeline_target": new.pipeline_target,
        "dataset": new.dataset,
        "resume_from": new.resume_from,
        "input_datasets": new.input_datasets or None,
        "state": State.QUEUED.value,
        "system_logs": [],
        "created_at": now,
        "updated_at": now,
        "rerun_of": new.rerun_of,
        "next_check_at": now,
    } | cached.values(now)
    files = [(a.name, a.content) for a in new.attachments]
    reason = f"submitted through {new.origin}"
    if new.workflow_source:
        reason += f"; workflow fetched from {new.workflow_source}"
    if new.resume_from:
        reason += f"; resumes run {new.resume_from}, re-using its finished steps"
    reason += f"; {cached.note}" if cached.note else ""
    creation = state_machine.Creation(spec.run_id, now, principal.name, reason, cached.state)
    key = IDEMPOTENCY_KEY.get()
    IDEMPOTENCY_KEY.set(None)  # one key, one run
    accepted = _Accepted(run_rows.NewRunRows(values, files), creation, key)
    if cached.hit is None:
        await _intake(services).submit(accepted)
        return
    try:  # a hit has columns a queued run has not: its own commit, not the shared one
        await _commit(services, [accepted])
    except BaseException:
        await cached.discard(services)
        raise


def _intake(services: AppContext) -> GroupCommit[_Accepted]:
    if services.run_intake is None:
        services.run_intake = GroupCommit(partial(_commit, services), isolate=(IntegrityError, DataError))
    intake: GroupCommit[_Accepted] = services.run_intake
    return intake


async def _commit(services: AppContext, accepted: Sequence[_Accepted]) -> None:
    rows = run_rows.rows_of([a.rows for a in accepted])
    links = key_rows.run_link_rows([(a.key, a.creation.run_id) for a in accepted if a.key is not None])
    outbox = await state_machine.creation_deliveries(services.db, [(a.rows.values, a.creation) for a in accepted])
    await services.db.insert_rows([*rows, state_machine.creation_events([a.creation for a in accepted]), links, outbox])
    services.run_queued()  # committed: a claim now finds them


async def stored_attachments(services: AppContext, run: RunRecord) -> list[Attachment]:
    """A run's uploaded files, from the database; runs stored before revision 0002 have them
    only in their folder."""
    if not run.attachments:
        return []
    async with services.db.read() as conn:
        stored = await run_rows.attachments(conn, run.id)
    if stored:
        return [Attachment(name, content) for name, content in stored]
    folder = run_folder(services.runs_dir, run.id).attachments
    return [Attachment(name, (folder / name).read_bytes()) for name in run.attachments if (folder / name).is_file()]


async def get_visible(services: AppContext, run_id: str, principal: Principal) -> RunRecord:
    """The run, or NotFound if it does not exist or the caller may not see it."""
    _check_run_id(run_id)
    row = await services.db.read_point(run_rows.BY_ID, {"run_id": run_id})
    return _visible(None if row is None else run_rows.record_of(row), run_id, principal)


async def get_visible_state(services: AppContext, run_id: str, principal: Principal) -> RunStatus:
    """Like :func:`get_visible`, reading only the id, state and research group (a status poll)."""
    _check_run_id(run_id)
    row = await services.db.read_point(run_rows.STATE_BY_ID, {"run_id": run_id})
    return _visible(None if row is None else run_rows.status_of(row), run_id, principal)


def _check_run_id(run_id: str) -> None:
    if _NUL in run_id:  # no run has one, and PostgreSQL refuses it in a query
        raise NotFound(f"run {run_id} not found")


def _visible(row: _Run | None, run_id: str, principal: Principal) -> _Run:
    """The one visibility rule of run reads: a run the caller may not see does not exist."""
    if row is None or not principal.can_see(row.research_group):
        raise NotFound(f"run {run_id} not found")
    return row


async def list_page(
    services: AppContext,
    principal: Principal,
    flt: RunFilter,
    page_size: int | None,
    page_token: str | None,
) -> tuple[list[RunRecord], str]:
    """One page of visible runs, newest first, and the token of the next page ('' at the end)."""
    return await paging.newest_first(services, page_size, page_token, _visible_pages(principal, flt, run_rows.page))


async def summary_page(
    services: AppContext, principal: Principal, flt: RunFilter, page_size: int | None, page_token: str | None
) -> tuple[list[RunSummary], str]:
    """:func:`list_page` reading only what a run summary shows (:data:`run_rows.SUMMARY_COLUMNS`)."""
    fetch = _visible_pages(principal, flt, run_rows.summary_page)
    return await paging.newest_first(services, page_size, page_token, fetch)


def _visible_pages(
    principal: Principal, flt: RunFilter, read: Callable[..., Awaitable[list[_Listed]]]
) -> paging.Fetch[_Listed]:
    """Pages of ``read`` narrowed to the runs ``principal`` may see, after checking the filter."""
    filter_values = [flt.tags, flt.dataset_id, flt.pipeline_name, flt.research_group, flt.request_id, flt.origin]
    try:
        json_values.check(filter_values)
    except json_values.JsonRefused as exc:
        raise InvalidInput(f"filters must not hold {exc.reason}") from None
    groups = principal.visible_groups()
    if groups is not None:
        flt = replace(flt, groups=groups if flt.groups is None else flt.groups & groups)
    return lambda conn, limit, after: read(conn, flt, limit, after)


_Cancelled = TypeVar("_Cancelled")


@dataclass(frozen=True)
class Cancel(Generic[_Cancelled]):
    """What a cancel did to a run or a request: ``ended`` is the state it had already ended in
    (nothing changed, and every door says so), None when the cancel was taken (or already under way)."""

    row: _Cancelled
    ended: str | None = None

    @property
    def detail(self) -> str:
        if self.ended:
            return f"already {self.ended}: there is nothing to cancel"
        return "cancel requested: the worker stops it on its engine"


async def cancel(services: AppContext, run_id: str, principal: Principal) -> Cancel[RunRecord]:
    """Ask for a cancel: the run moves to CANCELING and the worker carries it out.

    A run that already ended is left as it is and the answer says so; a second cancel of a run
    being canceled is taken again (idempotent).
    """
    for _ in range(5):
        row = await get_visible(services, run_id, principal)
        current = row.state
        answer = cancel_request(current)
        if answer == "ended":
            return Cancel(row, current.value)
        if answer == "under_way":
            return Cancel(row)
        now = utcnow()
        async with services.db.write() as conn:
            moved = await state_machine.transition(
                conn,
                run_id,
                current,
                State.CANCELING,
                now=now,
                reason="cancel requested",
                actor=principal.name,
                fields={"next_check_at": now},
            )
        if moved:
            return Cancel(await get_visible(services, run_id, principal))
    row = await get_visible(services, run_id, principal)
    return Cancel(row, row.state if is_terminal(row.state) else None)


async def task_page(
    services: AppContext, run_id: str, principal: Principal, page_size: int | None, page_token: str | None
) -> tuple[list[RowMapping], str]:
    await get_visible(services, run_id, principal)
    size = paging.page_size(page_size, services.settings.default_page_size, services.settings.max_page_size)
    after = paging.decode_position(page_token) if page_token else None
    async with services.db.read() as conn:
        rows = await task_rows.page(conn, run_id, after, size + 1)
    token = paging.encode_position(rows[size - 1]["position"]) if len(rows) > size else ""
    return rows[:size], token


async def get_task(services: AppContext, run_id: str, task_id: str, principal: Principal) -> RowMapping:
    await get_visible(services, run_id, principal)
    if _NUL in task_id:
        raise NotFound(f"task {task_id} not found in run {run_id}")
    async with services.db.read() as conn:
        row = await task_rows.get(conn, run_id, task_id)
    if row is None:
        raise NotFound(f"task {task_id} not found in run {run_id}")
    return row


def log_file(services: AppContext, run_id: str, stored_path: str | None) -> Path:
    """The local file behind a log or output link, only if it lies in the run's folder."""
    if not stored_path or "://" in stored_path:
        raise NotFound("this file is not available from flowdeck")
    folder = run_folder(services.runs_dir, run_id)
    path = Path(stored_path)
    if not path.is_absolute():
        path = folder.work / path
    if not folder.contains(path) or not path.is_file():
        raise NotFound("this file is not available from flowdeck")
    return path


def parse_json_object(raw: str | None, field_name: str, string_values: bool = False) -> dict[str, Any]:
    """A form field holding a JSON object (absent or empty → {})."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        value = loads_json(raw)
    except ValueError as exc:
        raise InvalidInput(f"{field_name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field_name} must be a JSON object")
    if string_values and not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(f"{field_name} values must be strings")
    return value


def loads_json(raw: str | bytes) -> Any:
    """The one strict JSON loader (domain.json_values); JsonRefused is a ValueError."""
    return json_values.loads(raw)
