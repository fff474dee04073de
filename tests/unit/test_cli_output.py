"""The client CLI's pieces that need no server: the saved config, the live view, output names."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from flowdeck.cli.client_config import config_path, load_config, save_config
from flowdeck.cli.client_http import UsageError
from flowdeck.cli.client_jobs import _local_name
from flowdeck.cli.output import Live, listing, table


def test_the_config_is_private_even_over_an_older_readable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text("old = 1\n")
    path.chmod(0o644)
    save_config({"server": "http://h:1", "token": 'fd_a"b\\c'})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config() == {"server": "http://h:1", "token": 'fd_a"b\\c'}


def test_a_broken_config_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config_path().parent.mkdir(parents=True)
    config_path().write_text("server = \n")
    with pytest.raises(UsageError, match="is not valid TOML") as caught:
        load_config()
    assert "\n" not in str(caught.value)


def test_the_live_view_off_a_terminal_prints_history_once() -> None:
    out = io.StringIO()
    live = Live(stream=out)
    live.show("r QUEUED", [])
    live.show("r RUNNING", ["  a running"])
    live.show("r RUNNING", ["  a running"])
    live.show("r COMPLETE", ["  a done"])
    assert out.getvalue().splitlines() == ["r QUEUED", "  a running", "r RUNNING", "  a done", "r COMPLETE"]


def test_the_live_view_with_json_prints_each_event_as_one_line() -> None:
    out = io.StringIO()
    live = Live("json", stream=out)
    live.show("r RUNNING", ["  a running"], {"id": 3, "to_state": "RUNNING"})
    live.show("r RUNNING", ["  a running"], {})  # a keep-alive
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"id": 3, "to_state": "RUNNING"}]


def test_tables_and_listings_are_plain_and_leave_out_empty_fields() -> None:
    text = table([{"id": "1", "state": None, "n": [1]}], ["id", "state", "n"])
    assert text.splitlines() == ["ID  STATE  N", "1          [1]"]
    assert listing({"id": "1", "gone": None, "links": {"self": "x"}, "empty": {}}) == "id  1"


@pytest.mark.parametrize(
    ("name", "local"),
    [("outputs/x.txt", "outputs/x.txt"), ("/etc/passwd", "etc/passwd"), ("../../x", "x"), ("", "output-4")],
)
def test_a_download_stays_under_its_folder(name: str, local: str) -> None:
    assert _local_name(name, 4) == Path(local)
