"""Run inputs given as ``dataset:<id>``: a registered dataset named by the id ``/datasets`` answers.

At submit, :func:`resolve` looks each one up with the datasets' own visibility rule
(:func:`flowdeck.services.datasets.service.get_visible`): an unknown id and another group's dataset get the
same validation error, which names the input and never says the dataset exists. The worker
resolves them again before staging (:func:`resolve_for_staging`): a dataset deleted since then
fails the run with a sentence saying so. docs/staging.md describes the form.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from flowdeck.domain.principal import Principal
from flowdeck.errors import InvalidInput, NotFound, Problem, ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.datasets import service as dataset_service
from flowdeck.services.execution import staging

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WORKER = Principal(name="worker", unrestricted=True, via="worker")


async def resolve(services: AppContext, inputs: list[staging.Input], principal: Principal) -> list[staging.Input]:
    """``inputs`` with every ``dataset:<id>`` given its :class:`staging.Source`; ValidationFailed
    (one problem per input) for an id the caller may not use."""
    resolved, problems = [], []
    for item in inputs:
        try:
            resolved.append(await _resolved(services, item, principal))
        except InvalidInput as exc:
            problems.append(Problem(item.pointer, exc.detail, "dataset"))
    if problems:
        raise ValidationFailed("; ".join(f"input {p.pointer}: {p.message}" for p in problems), problems)
    return resolved


async def resolve_for_staging(services: AppContext, inputs: list[staging.Input]) -> list[staging.Input]:
    """:func:`resolve` at dispatch: InvalidInput (the run fails with it) for a dataset gone since submit."""
    resolved = []
    for item in inputs:
        try:
            resolved.append(await _resolved(services, item, _WORKER))
        except InvalidInput as exc:
            raise InvalidInput(f"input {item.pointer}: {exc.detail} (deleted after the run was submitted?)") from None
    return resolved


async def check_params(services: AppContext, params: Any, principal: Principal, at: str = "") -> dict[str, str]:
    """The datasets ``params`` names (pointer → id), each visible to ``principal``; for a request's
    items, whose runs the worker creates later."""
    named = [item for item in staging.in_values(params) if item.dataset_id is not None]
    try:
        resolved = await resolve(services, named, principal)
    except ValidationFailed as exc:
        problems = [Problem(at + p.pointer, p.message, p.rule) for p in exc.problems]
        raise ValidationFailed(f"{at}: {exc.detail}" if at else exc.detail, problems) from None
    return recorded(resolved)


def recorded(inputs: list[staging.Input]) -> dict[str, str]:
    """What the run keeps of its datasets: input pointer → dataset id."""
    return {item.pointer: item.dataset_id for item in inputs if item.dataset_id is not None}


async def _resolved(services: AppContext, item: staging.Input, principal: Principal) -> staging.Input:
    dataset_id = item.dataset_id
    if dataset_id is None:
        return item
    try:
        row = await dataset_service.get_visible(services, dataset_id, principal)
    except NotFound:
        raise InvalidInput(f"dataset {dataset_id[:64]} not found") from None
    if row.pending_upload:
        raise InvalidInput(f"dataset {dataset_id} has no file yet: its upload has not arrived")
    if row.storage_key is None and row.uri is None:
        raise InvalidInput(f"dataset {dataset_id} is a Galaxy dataset: only Galaxy runs can read it")
    name = unquote(urlsplit(row.storage_key or row.uri).path).rstrip("/").rsplit("/", 1)[-1]
    filename = _UNSAFE.sub("_", name).strip("._")[:128] or "data"
    source = staging.Source(dataset_id, filename, row.storage_key, row.uri)
    return replace(item, source=source)
