"""What a resumed CWL run takes from the old run's folder: only finished steps, as links, and
nothing it could then write back into the old run."""

from __future__ import annotations

from pathlib import Path

from flowdeck.backends import cwl_resume, toil_resume
from flowdeck.backends.local.launcher import control_dir
from flowdeck.domain.states import State


def _entry(cache: Path, key: str, status: str | None) -> Path:
    (cache / key).mkdir(parents=True)
    (cache / key / "a.txt").write_text(key)
    if status is not None:
        (cache / f"{key}.status").write_text(status)
    return cache / key / "a.txt"


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    control_dir(new).mkdir(parents=True)
    return old, new


def test_only_successful_cache_entries_are_linked_and_their_status_is_a_copy(tmp_path: Path) -> None:
    old, new = _folders(tmp_path)
    done = _entry(old / "cache", "done", "success")
    _entry(old / "cache", "failed", "permanentFail")
    _entry(old / "cache", "killed", "")  # the step was running when the run ended
    _entry(old / "cache", "orphan", None)

    assert cwl_resume.seed_cache(old, new) == ["done"]
    assert sorted(p.name for p in (new / "cache").iterdir()) == ["done", "done.status"]
    assert (new / "cache" / "done" / "a.txt").stat().st_ino == done.stat().st_ino
    status = new / "cache" / "done.status"
    assert status.stat().st_ino != (old / "cache" / "done.status").stat().st_ino
    status.write_text("permanentFail")  # what cwltool would write on a miss stays in the new run
    assert (old / "cache" / "done.status").read_text() == "success"


def test_a_cwltool_run_without_a_cache_seeds_nothing(tmp_path: Path) -> None:
    old, new = _folders(tmp_path)
    old.mkdir()
    assert cwl_resume.seed_cache(old, new) == []
    assert not (new / "cache").exists()


def test_a_toil_job_store_is_linked_with_the_finished_steps_named_once(tmp_path: Path) -> None:
    old, new = _folders(tmp_path)
    job = old / "js" / "jobs" / "kind-CWLJob" / "job"
    job.parent.mkdir(parents=True)
    job.write_bytes(b"pickled")

    assert toil_resume.seed_job_store(old, new, ["first", "first (re-used)", "zip"])
    assert toil_resume.restarts(new)
    assert (new / "js" / "jobs" / "kind-CWLJob" / "job").stat().st_ino == job.stat().st_ino
    tasks = toil_resume.reused_tasks(new)
    assert [(t.name, t.backend_task_id, t.state) for t in tasks] == [
        ("first (re-used)", "reused:first", State.COMPLETE),
        ("zip (re-used)", "reused:zip", State.COMPLETE),
    ]


def test_a_toil_run_that_left_no_job_store_starts_afresh(tmp_path: Path) -> None:
    old, new = _folders(tmp_path)
    (old / "js").mkdir(parents=True)  # a run that succeeded: Toil removed its jobs
    assert not toil_resume.seed_job_store(old, new, ["first"])
    assert not toil_resume.restarts(new)
    assert toil_resume.reused_tasks(new) == []
