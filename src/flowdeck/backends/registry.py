"""The static map of backend names to classes, and the set enabled by settings."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from typing import TYPE_CHECKING

from flowdeck.errors import ConfigurationError, FlowdeckError, InvalidInput

if TYPE_CHECKING:
    from flowdeck.backends.base import Backend
    from flowdeck.settings import Settings

log = logging.getLogger(__name__)
VERSION_TTL_SECONDS = 300.0
VERSION_RETRY_SECONDS = 30.0

# name -> "module:Class". Adding a backend is one module plus one line here.
BACKENDS: dict[str, str] = {
    "demo": "flowdeck.backends.demo:DemoBackend",
    "galaxy": "flowdeck.backends.galaxy.backend:GalaxyBackend",
    "cwltool": "flowdeck.backends.cwltool:CwltoolBackend",
    "snakemake": "flowdeck.backends.snakemake:SnakemakeBackend",
    "miniwdl": "flowdeck.backends.miniwdl:MiniwdlBackend",
    "toil": "flowdeck.backends.toil:ToilBackend",
    "omics": "flowdeck.backends.omics:OmicsBackend",
}

# WES workflow types and their spellings clients use.
TYPE_ALIASES: dict[str, str] = {
    "CWL": "CWL",
    "WDL": "WDL",
    "SMK": "SMK",
    "SNAKEMAKE": "SMK",
    "GALAXY": "GALAXY",
    "DEMO": "DEMO",
}

# Which backend runs a workflow type when the client names no engine.
DEFAULT_FOR_TYPE: dict[str, list[str]] = {
    "CWL": ["cwltool", "toil"],
    "WDL": ["miniwdl", "toil"],
    "SMK": ["snakemake"],
    "GALAXY": ["galaxy"],
    "DEMO": ["demo"],
}


def load_class(name: str) -> type[Backend]:
    """Import the backend class registered under ``name``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigurationError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


class Registry:
    """The backends enabled by settings whose engines are installed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backends: dict[str, Backend] = {}
        for name in settings.backends:
            if name not in BACKENDS:
                log.warning("backend %r is not known; skipped", name)
                continue
            cls = load_class(name)
            if not cls.available():
                log.info("backend %r skipped: its engine is not installed", name)
                continue
            if missing := cls.missing_configuration(settings):
                log.info("backend %r skipped: %s", name, missing)
                continue
            self._backends[name] = cls(settings)
        self._versions: dict[str, tuple[str, float]] = {}
        self._versions_lock = threading.Lock()

    def __contains__(self, name: str) -> bool:
        return name in self._backends

    def names(self) -> list[str]:
        return list(self._backends)

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            raise InvalidInput(
                f"workflow engine {name!r} is not enabled here; enabled: {', '.join(self._backends) or 'none'}"
            ) from None

    def all(self) -> list[Backend]:
        return list(self._backends.values())

    def engine_version(self, name: str) -> str:
        """The backend's engine version, remembered for a while: asking may mean a call
        to a remote engine, which must not happen on every service-info or submit.
        An engine that cannot say (unreachable) is ``unknown``, asked again sooner."""
        now = time.monotonic()
        with self._versions_lock:
            cached = self._versions.get(name)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            version, ttl = self.get(name).engine_version(), VERSION_TTL_SECONDS
        except FlowdeckError as exc:
            log.warning("engine %s did not tell its version: %s", name, exc.detail)
            version, ttl = "unknown", VERSION_RETRY_SECONDS
        with self._versions_lock:
            self._versions[name] = (version, now + ttl)
        return version

    def choose(self, workflow_type: str, engine: str | None) -> Backend:
        """The backend for a workflow type, or the named engine if it runs that type."""
        canonical = canonical_type(workflow_type)
        if engine:
            backend = self.get(engine)
            if canonical not in backend.workflow_types:
                raise InvalidInput(f"workflow engine {engine!r} does not run {workflow_type} workflows")
            return backend
        for name in DEFAULT_FOR_TYPE.get(canonical, []):
            if name in self._backends:
                return self._backends[name]
        raise InvalidInput(
            f"no enabled engine runs {workflow_type} workflows; "
            f"supported types: {', '.join(sorted(self.workflow_types()))}"
        )

    def workflow_types(self) -> dict[str, list[str]]:
        """Workflow type -> versions, over all enabled backends."""
        merged: dict[str, list[str]] = {}
        for backend in self._backends.values():
            for wf_type, versions in backend.workflow_types.items():
                known = merged.setdefault(wf_type, [])
                known.extend(v for v in versions if v not in known)
        return merged


def canonical_type(workflow_type: str) -> str:
    """The canonical spelling of a workflow type, or InvalidInput."""
    try:
        return TYPE_ALIASES[workflow_type.strip().upper()]
    except KeyError:
        raise InvalidInput(
            f"unsupported workflow_type {workflow_type!r}; supported: {', '.join(sorted(set(TYPE_ALIASES.values())))}"
        ) from None
