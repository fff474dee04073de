"""The client CLI end to end against a real ``flowdeck up``: jobs, pipelines, requests, datasets,
output formats and paging, errors, login and completion, ``--watch`` under a pty and piped."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.cli_support import CLI, client_env, run_in_pty, running_server, screen, server_env

SHEET = "sample_id,fastq_files\nS1,s3://lab/S1.fq.gz\nS2,s3://lab/S2.fq.gz\nS3,s3://lab/S3.fq.gz\n"
# The demo simulation (2.0.0 runs tools: tests/integration/test_rnaseq.py).
RNASEQ = ["--pipeline", "rnaseq_deseq2", "--version", "1.0.0", "--params", '{"reference": "gencode_v44"}']


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cli-server")
    with running_server(server_env(folder), folder) as url:
        yield url


@pytest.fixture
def cli(server: str, tmp_path: Path) -> Iterator[Cli]:
    return Cli(client_env(server, tmp_path / "config"), tmp_path)


class Cli:
    """``flowdeck …`` as a subprocess with plain pipes."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd

    def __call__(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *argv], env=self.env, cwd=self.cwd, input=stdin, capture_output=True, text=True, timeout=120
        )

    def json(self, *argv: str) -> object:
        done = self(*argv, "-o", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)


@pytest.mark.engine  # cwltool runs hello_cwl for real
def test_jobs_submit_watch_logs_outputs_download_and_rerun(cli: Cli) -> None:
    submitted = cli("jobs", "submit", "--pipeline", "hello_cwl", "--set", 'lines=["a b", "c"]', "--watch")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.split()[1]  # the listing's first line: "id  <job id>"
    assert submitted.stdout.splitlines()[-1].split()[:2] == [job_id, "COMPLETE"]
    assert "  shout" in submitted.stdout  # the watch shows the run's tasks
    outputs = cli("jobs", "outputs", job_id)
    assert "outputs/shouted.txt" in outputs.stdout, outputs.stdout + outputs.stderr
    assert "shouted" in cli("jobs", "logs", job_id).stdout
    downloaded = cli("jobs", "download", job_id, "-d", "got")
    assert downloaded.returncode == 0, downloaded.stderr
    assert (cli.cwd / "got" / "outputs" / "shouted.txt").read_text() == "A B\nC\n"
    assert not list((cli.cwd / "got").rglob("*.part"))
    assert cli("jobs", "download", job_id, "7").returncode == 1
    rerun = cli.json("jobs", "rerun", job_id)
    assert isinstance(rerun, dict)
    assert rerun["rerun_of"] == job_id
    assert rerun["id"] != job_id


def test_jobs_submit_dry_run_and_a_bad_parameter(cli: Cli) -> None:
    planned = cli.json("jobs", "submit", "--pipeline", "hello_cwl", "--set", 'lines=["x"]', "--dry-run")
    assert isinstance(planned, dict)
    assert "id" not in planned.get("job", planned)
    refused = cli("jobs", "submit", "--pipeline", "hello_cwl", "--set", "lines=3")
    assert refused.returncode == 1
    assert refused.stderr.startswith("flowdeck: 422")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_pipelines_list_show_and_schema_in_every_format(cli: Cli) -> None:
    listed = cli.json("pipelines", "list")
    assert isinstance(listed, dict)
    assert "hello_cwl" in [p["name"] for p in listed["pipelines"]]
    table = cli("pipelines", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "BACKEND", "DESCRIPTION"]
    assert "\x1b" not in "".join(table)  # plain text when not a terminal
    shown = yaml.safe_load(cli("pipelines", "show", "hello_cwl", "-o", "yaml").stdout)
    assert shown["name"] == "hello_cwl"
    assert shown["versions"] == ["1.0.0"]
    schema = json.loads(cli("pipelines", "schema", "hello_cwl").stdout)
    assert schema["properties"]["lines"]["type"] == "array"
    missing = cli("pipelines", "show", "nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("flowdeck: 404")


def test_requests_submit_a_sample_sheet_watch_list_get_and_cancel(cli: Cli) -> None:
    (cli.cwd / "sheet.csv").write_text(SHEET)
    watched = cli("requests", "submit", *RNASEQ, "--sample-sheet", "sheet.csv", "--watch")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    request_id = watched.stdout.split()[1]
    last = {line.split()[0]: line.split()[-1] for line in watched.stdout.splitlines() if line.startswith("  S")}
    assert last == {"S1": "COMPLETE", "S2": "COMPLETE", "S3": "COMPLETE"}
    assert watched.stdout.splitlines()[-1].endswith("runs 3/3  3 COMPLETE")
    listed = yaml.safe_load(cli("requests", "list", "-o", "yaml").stdout)
    assert request_id in [r["request_id"] for r in listed["requests"]]
    got = cli.json("requests", "get", request_id)
    assert isinstance(got, dict)
    assert [r["sample_id"] for r in got["runs"]] == ["S1", "S2", "S3"]
    assert "S2" in cli("requests", "get", request_id).stdout
    ended = cli.json("requests", "cancel", request_id)
    assert isinstance(ended, dict)
    assert ended["detail"]


def test_datasets_upload_register_list_with_paging_and_get(cli: Cli) -> None:
    (cli.cwd / "reads.fq").write_text("@r1\nACGT\n+\nIIII\n")
    uploaded = cli.json("datasets", "upload", "reads.fq", "--name", "my reads")
    assert isinstance(uploaded, dict)
    assert uploaded["stored"]
    assert uploaded["size"] == 16
    registered = cli.json("datasets", "register", "--name", "remote", "--uri", "s3://lab/x.fq.gz")
    assert isinstance(registered, dict)
    assert registered["uri"] == "s3://lab/x.fq.gz"
    first = cli("datasets", "list", "--limit", "1")
    assert first.returncode == 0
    assert "remote" in first.stdout
    hint = first.stderr.strip()
    assert hint.startswith("more: --page-token ")
    second = cli("datasets", "list", "--limit", "1", "--page-token", hint.split()[-1])
    assert "my reads" in second.stdout
    got = cli.json("datasets", "get", uploaded["id"])
    assert isinstance(got, dict)
    assert got["name"] == "my reads"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["jobs", "get"], "flowdeck jobs get: error: the following arguments are required: job_id"),
        (["jobs", "list", "-o", "xml"], "flowdeck jobs list: error: argument -o/--output: invalid choice"),
        (["datasets", "upload", "nope.fq"], "flowdeck: No such file or directory: nope.fq"),
        (["requests", "submit", "--pipeline", "p", "--sample-sheet", "no.csv"], "flowdeck: No such file"),
        (["jobs", "submit", "--pipeline", "p", "--params", "{bad"], "flowdeck: --params is neither JSON"),
        (["jobs", "submit", "--pipeline", "p", "--set", "novalue"], "flowdeck: --set takes name=value"),
        (["datasets", "register", "--name", "x"], "flowdeck: give --uri URI or --galaxy-id ID"),
    ],
)
def test_a_bad_argument_or_missing_file_is_one_line_and_exit_2(cli: Cli, argv: list[str], message: str) -> None:
    done = cli(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def test_yaml_and_json_say_the_same_and_a_missing_job_is_exit_1(cli: Cli) -> None:
    # --watch: the run has ended before both listings, so they describe the same moment.
    cli("runs", "submit", "--type", "DEMO", "--type-version", "1.0", "--url", "demo://formats", "--watch")
    as_json = json.loads(cli("jobs", "list", "-o", "json").stdout)
    assert yaml.safe_load(cli("jobs", "list", "-o", "yaml").stdout) == as_json
    missing = cli("jobs", "get", "nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("flowdeck: 404")
    assert "Traceback" not in missing.stderr


def test_watch_under_a_pseudo_terminal_redraws_one_live_view(cli: Cli) -> None:
    code, raw = run_in_pty(
        [*CLI, "runs", "submit", "--type", "DEMO", "--type-version", "1.0", "--url", "demo://pty", "--watch"],
        cli.env,
        cli.cwd,
    )
    assert code == 0, raw
    assert "\x1b[1m" in raw
    assert "F\x1b[J" in raw
    shown = screen(raw)
    run_id = shown[0]
    assert shown[1].split()[:2] == [run_id, "COMPLETE"], shown  # one summary line, the latest
    assert len([line for line in shown if line.startswith(run_id)]) == 2  # the id, then the view
    assert shown[2:], shown
    assert all(line.split()[-1] == "done" for line in shown[2:]), shown


def test_request_watch_under_a_pseudo_terminal_shows_every_sample(cli: Cli) -> None:
    (cli.cwd / "sheet.csv").write_text(SHEET)
    code, raw = run_in_pty(
        [*CLI, "requests", "submit", *RNASEQ, "--sample-sheet", "sheet.csv", "--watch"], cli.env, cli.cwd
    )
    assert code == 0, raw
    shown = screen(raw)
    summaries = [line for line in shown if line.startswith("request ")]
    assert len(summaries) == 1, shown
    assert summaries[0].endswith("runs 3/3  3 COMPLETE"), shown
    samples = {line.split()[0]: line.split()[-1] for line in shown if line.startswith("  S")}
    assert samples == {"S1": "COMPLETE", "S2": "COMPLETE", "S3": "COMPLETE"}, shown


def test_watch_with_json_output_piped_is_one_event_a_line(cli: Cli) -> None:
    submit = ["runs", "submit", "--type", "DEMO", "--type-version", "1.0", "--url", "demo://json", "--watch"]
    done = cli(*submit, "-o", "json")
    assert done.returncode == 0, done.stderr
    answer, *lines = done.stdout.splitlines()
    run_id = json.loads(answer)["run_id"]
    events = [json.loads(line) for line in lines]
    assert {e["run_id"] for e in events} == {run_id}
    assert [e["to_state"] for e in events] == ["QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    failing = cli(*submit, "-o", "json", "--engine-params", '{"outcome": "failure"}')
    assert failing.returncode == 1
    assert json.loads(failing.stdout.splitlines()[-1])["to_state"] == "EXECUTOR_ERROR"


def test_completion_scripts_complete_commands_options_and_choices(cli: Cli) -> None:
    bash = cli("completion", "bash").stdout
    assert "complete -o default -F _flowdeck flowdeck" in bash

    def complete(*words: str) -> list[str]:
        quoted = " ".join(f'"{w}"' for w in words)
        probe = f'{bash}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _flowdeck; echo "${{COMPREPLY[@]}}"'
        return subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    assert complete("flowdeck", "jo") == ["jobs"]
    assert complete("flowdeck", "jobs", "do") == ["download"]
    assert complete("flowdeck", "requests", "submit", "--sample") == ["--sample-sheet"]
    assert sorted(complete("flowdeck", "jobs", "list", "-o", "")) == ["json", "table", "yaml"]
    zsh = cli("completion", "zsh").stdout
    assert zsh.startswith("autoload -U +X bashcompinit && bashcompinit")


def test_login_saves_a_token_not_the_password_and_later_commands_use_it(tmp_path: Path) -> None:
    data = tmp_path / "server"
    env = server_env(data, FLOWDECK_AUTH_MODE="basic")
    password = "a long enough passphrase 42"
    made = subprocess.run(
        [*CLI, "users", "create", "alice", "--password-stdin"], env=env, cwd=tmp_path, input=password + "\n",
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with running_server(env, tmp_path) as url:
        client = Cli({**client_env(url, tmp_path / "config"), "FLOWDECK_SERVER": ""}, tmp_path)
        refused = client("jobs", "list", "--server", url)
        assert refused.returncode == 1
        assert refused.stderr.startswith("flowdeck: 401")
        wrong = client("login", "--server", url, "--user", "alice", "--password-stdin", stdin="nope\n")
        assert wrong.returncode == 1
        assert wrong.stderr.startswith("flowdeck: 401")
        done = client("login", "--server", url, "--user", "alice", "--password-stdin", stdin=password + "\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"logged in to {url} as alice")
        config = tmp_path / "config" / "flowdeck" / "config.toml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
        saved = config.read_text()
        assert password not in saved
        assert 'token = "fd_' in saved
        listed = client("jobs", "list", "-o", "json")  # no --server, no credentials: the saved login
        assert listed.returncode == 0, listed.stderr
        elsewhere = client("jobs", "list", "--server", url.replace("127.0.0.1", "localhost"))
        assert elsewhere.returncode == 1
        assert "401" in elsewhere.stderr
        assert client("logout").returncode == 0
        assert "token" not in config.read_text()
        assert client("jobs", "list").returncode == 1


def test_start_up_prints_the_migrations_but_not_alembics_plugin_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "db", "upgrade"], env=server_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Running upgrade" in done.stderr
    assert "setup plugin" not in done.stderr


def test_usage_of_a_group_in_json_and_as_a_table(cli: Cli) -> None:
    usage = cli.json("usage", "lab-z")
    assert usage == {
        "research_group": "lab-z",
        "executing": 0,
        "queued": 0,
        "runs_by_state": {},
        "weight": 1.0,
        "max_running": None,
        "stored_bytes": 0,
        "max_stored_bytes": None,
    }
    assert "research_group" in cli("usage", "lab-z").stdout
