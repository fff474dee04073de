"""What the README and the user docs say stays true: the metric names they give are the ones
``/metrics`` exposes, and every ``flowdeck …`` command in their examples parses."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from prometheus_client import Counter

from flowdeck.cli.main import build_parser
from flowdeck.services.core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# flowdeck_ words in the docs that are not metrics: a Galaxy workflow and tool, a Galaxy history tag,
# the Snakemake config key of registered references,
# and an AWS HealthOmics run tag, the PostgreSQL NOTIFY channel.
NOT_METRICS = {"flowdeck_sort_upper", "flowdeck_upper", "flowdeck_run", "flowdeck_events", "flowdeck_references"}
EXAMPLES = [ROOT / "README.md", ROOT / "docs" / "cli.md", ROOT / "docs" / "jobs.md"]


def exposed() -> set[str]:
    """The names a scrape shows: a counter's with ``_total``, a histogram's and a gauge's as named."""
    metrics = Metrics()
    names = set()
    for metric in vars(metrics).values():
        if hasattr(metric, "_name"):  # a metric; prometheus_client keeps its family name there
            name = metric._name
            names.add(f"{name}_total" if isinstance(metric, Counter) else name)
    return names


def test_the_docs_name_only_metrics_that_exist_and_the_readme_names_them_all() -> None:
    names = exposed()
    assert "flowdeck_backend_errors_total" in names
    for doc in DOCS:
        named = set(re.findall(r"\bflowdeck_[a-z_]+", doc.read_text())) - NOT_METRICS
        assert named <= names, f"{doc.name} names metrics /metrics does not expose: {sorted(named - names)}"
    readme = set(re.findall(r"\bflowdeck_[a-z_]+", (ROOT / "README.md").read_text()))
    assert names <= readme, f"README.md does not list {sorted(names - readme)}"


def _commands(doc: Path) -> list[str]:
    """The ``flowdeck …`` lines of a document's code blocks, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", doc.read_text())
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    blocks += ["\n".join(re.findall(r"^    (.*)$", text, re.M))]  # indented blocks
    found = []
    for line in "\n".join(blocks).splitlines():
        line = line.strip().removeprefix(".venv/bin/")
        if line.startswith("flowdeck ") or line.startswith('eval "$(flowdeck '):
            found.append(line)
    return found


@pytest.mark.parametrize("command", [c for doc in EXAMPLES for c in _commands(doc)])
def test_every_flowdeck_command_in_the_examples_parses(command: str) -> None:
    command = re.sub(r'^eval "\$\((.*)\)"', r"\1", command)
    words = shlex.split(re.sub(r"<[^>]+>", "ID", command), comments=True)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{command!r} does not parse: {stderr.getvalue().strip()}")
