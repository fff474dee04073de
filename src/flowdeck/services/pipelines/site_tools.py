"""The command-line tools this site has (bwa, samtools, GATK, …) and their versions.

Probed once per process (each tool's version command, in threads; about a second in all) and
shown by service-info and ``GET /pipelines/{name}``. GATK counts only when the
``gatk_executable`` setting names it: it is not packaged for Debian, and a ``gatk`` found on
PATH by chance is not a site decision.

A pipeline declares what it needs in its parameter schema (docs/pipelines.md):
``x-flowdeck-tools`` at the top is a list of tools every run needs; on a property it maps
values to the tools that value needs (``{HaplotypeCaller: [gatk], freebayes: [freebayes]}``).
:func:`tool_problems` turns a value whose tools are missing into a 422 that names the values
this site can run.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowdeck.errors import Problem

if TYPE_CHECKING:
    from flowdeck.services.pipelines.catalog import Pipeline
    from flowdeck.settings import Settings

MARK = "x-flowdeck-tools"
# Each tool's version command (bwa prints its version in its usage text).
VERSION_ARGS: dict[str, tuple[str, ...]] = {
    "bwa": (),
    "samtools": ("--version",),
    "bcftools": ("--version",),
    "bgzip": ("--version",),
    "tabix": ("--version",),
    "freebayes": ("--version",),
    "fastp": ("--version",),
    "cutadapt": ("--version",),
    "salmon": ("--version",),
    "kallisto": ("version",),
    "Rscript": ("--version",),
    "gatk": ("--version",),
}
_VERSION = re.compile(r"v?(\d+\.\d+(?:\.\d+)?(?:[-.][A-Za-z0-9]+)*)")


def site_tools(settings: Settings) -> dict[str, str | None]:
    """Every known tool: its version (``"unknown"`` when it prints none), None when absent."""
    return dict(_probe(settings.gatk_executable))


@functools.cache
def _probe(gatk: str | None) -> tuple[tuple[str, str | None], ...]:
    commands = {tool: shutil.which(tool) for tool in VERSION_ARGS if tool != "gatk"}
    commands["gatk"] = shutil.which(gatk) if gatk else None
    with ThreadPoolExecutor(4) as pool:
        versions = pool.map(lambda item: (item[0], _version(item[1], VERSION_ARGS[item[0]])), commands.items())
        return tuple(versions)


def _version(command: str | None, args: tuple[str, ...]) -> str | None:
    if command is None:
        return None
    try:
        done = subprocess.run(
            [command, *args], capture_output=True, text=True, errors="replace", timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout + "\n" + done.stderr
    marked = re.search(r"Version:\s*(\S+)", text)  # bwa's usage text
    found = marked or _VERSION.search(text)
    return found.group(1) if found else "unknown"


def pipeline_tools(pipeline: Pipeline) -> list[str]:
    """Every tool the pipeline may use: those every run needs, then those its choices need."""
    schema = pipeline.model.schema
    tools: list[str] = list(schema.get(MARK, []))
    for spec in schema.get("properties", {}).values():
        for needed in (spec.get(MARK) or {}).values() if isinstance(spec, dict) else ():
            tools += [tool for tool in needed if tool not in tools]
    return tools


def tool_problems(
    settings: Settings, pipeline: Pipeline, parameters: dict[str, Any], prefix: str = ""
) -> list[Problem]:
    """A problem for each chosen value whose tools this site lacks (no fallback, no simulation)."""
    problems: list[Problem] = []
    for name, spec in pipeline.model.schema.get("properties", {}).items():
        needs = spec.get(MARK) if isinstance(spec, dict) else None
        if not needs or str(parameters.get(name)) not in needs:
            continue
        have = site_tools(settings)
        missing = [tool for tool in needs[str(parameters[name])] if have.get(tool) is None]
        if missing:
            usable = [value for value, tools in needs.items() if all(have.get(t) is not None for t in tools)]
            message = (
                f"{name} {parameters[name]} needs {', '.join(missing)}, which this site does not have"
                + (" (GATK is not installed; setting gatk_executable)" if "gatk" in missing else "")
                + f"; {name}s this site has: {', '.join(usable) or 'none'}"
            )
            problems.append(Problem(f"{prefix}/{name}", message, "tools"))
    return problems
