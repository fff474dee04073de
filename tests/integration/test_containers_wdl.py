"""WDL runtime containers through podman, for real: a task naming the locally built test
image runs in it (miniwdl's podman backend behind flowdeck's wrapper), a missing image is
refused at submit, and with containers off the task runs on the host as before."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from flowdeck.backends.local.containers import image_exists
from flowdeck.backends.miniwdl import DEFAULT_IMAGE
from flowdeck.backends.registry import Registry, load_class
from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import InvalidInput, ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.services.pipelines.catalog import Catalog
from flowdeck.settings import Settings
from tests.contract import contract
from tests.integration.test_containers import IMAGE, SANDBOX_IMAGES, test_image  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (make install)"),
    pytest.mark.skipif(not load_class("miniwdl").available(), reason="miniwdl is not installed"),
]

WES = "/ga4gh/wes/v1"
TASK = Path(__file__).resolve().parents[1] / "workflows" / "containers" / "in_container.wdl"


def task_spec(data: Path, text: str | None = None) -> RunSpec:
    folder = data / "runs" / "w1"
    (folder / "attachments").mkdir(parents=True)
    (folder / "attachments" / "in_container.wdl").write_text(text or TASK.read_text())
    return RunSpec(
        run_id="w1",
        workflow_type="WDL",
        workflow_type_version="1.1",
        workflow_url="in_container.wdl",
        workflow_params={"where.message": "hello podman"},
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def report_lines(data: Path, containers: bool) -> list[str]:
    backend = load_class("miniwdl")(
        Settings(data_dir=data, containers=containers, container_sandbox_images=SANDBOX_IMAGES)
    )
    report = contract.wait_done(backend, contract.submit(backend, task_spec(data)), 180)
    assert report.state is State.COMPLETE, report
    found = [f for f in report.output_files or [] if f.name.endswith("stdout.txt")]
    return Path(found[0].location).read_text().splitlines()


def test_a_wdl_task_runs_in_its_image_under_podman(tmp_path: Path, test_image: str) -> None:  # noqa: F811
    lines = report_lines(tmp_path / "data", containers=True)
    assert lines[:2] == ["message: hello podman", "where: container"]
    assert "Debian" in lines[2]
    assert lines[3].split() == ["network:", "lo"]  # --network none: loopback only


def test_without_containers_the_task_runs_on_the_host(tmp_path: Path) -> None:
    """Containers off: miniwdl's bare backend, the image ignored, the task in the run's sandbox."""
    lines = report_lines(tmp_path / "data", containers=False)
    assert lines[:2] == ["message: hello podman", "where: host"]


def missing_image_text() -> tuple[str, str]:
    missing = f"localhost/flowdeck-missing:{uuid.uuid4().hex[:8]}"
    return missing, TASK.read_text().replace(IMAGE, missing)


def test_a_missing_image_is_a_validation_failure(tmp_path: Path) -> None:
    missing, text = missing_image_text()
    backend = load_class("miniwdl")(
        Settings(data_dir=tmp_path / "data", containers=True, container_sandbox_images=SANDBOX_IMAGES)
    )
    with pytest.raises(ValidationFailed, match=missing) as caught:
        backend.validate(task_spec(tmp_path / "data", text))
    assert caught.value.status_code == 422
    assert "flowdeck images import" in caught.value.detail


def test_a_task_without_an_image_needs_the_default_one(tmp_path: Path, test_image: str) -> None:  # noqa: F811
    """Beside a task that names an image, one naming none runs in DEFAULT_IMAGE: checked too."""
    if image_exists(Settings(data_dir=tmp_path / "data"), DEFAULT_IMAGE):
        pytest.skip(f"{DEFAULT_IMAGE} is present on this machine")
    workflow = "workflow w {\n  call where { input: message = 'x' }\n  call bare\n}\n\ntask where"
    bare = "\ntask bare {\n  command <<< echo hi >>>\n  output { String out = read_string(stdout()) }\n}\n"
    spec = task_spec(tmp_path / "data", TASK.read_text().replace("task where", workflow) + bare)
    spec.workflow_params.clear()
    backend = load_class("miniwdl")(
        Settings(data_dir=tmp_path / "data", containers=True, container_sandbox_images=SANDBOX_IMAGES)
    )
    with pytest.raises(ValidationFailed, match=f"{DEFAULT_IMAGE} \\(the image of the tasks that name none\\)"):
        backend.validate(spec)


@pytest.mark.parametrize(
    ("runtime", "refusal"),
    [
        ('container: "img:~{message}"', "must be a literal string"),
        ('docker: "x"\n    privileged: true', "privileged is not allowed"),
    ],
)
def test_images_that_cannot_be_checked_are_refused(tmp_path: Path, runtime: str, refusal: str) -> None:
    text = TASK.read_text().replace(f'container: "{IMAGE}"', runtime)
    backend = load_class("miniwdl")(
        Settings(data_dir=tmp_path / "data", containers=True, container_sandbox_images=SANDBOX_IMAGES)
    )
    with pytest.raises(InvalidInput, match=refusal):
        backend.validate(task_spec(tmp_path / "data", text))


@pytest.fixture
def wdl_services(services: AppContext) -> AppContext:
    services.settings.backends = ["demo", "miniwdl"]
    services.settings.containers = True
    services.settings.container_registry = "registry.example.org/mirror"
    services.backends = Registry(services.settings)
    return services


async def test_a_missing_image_is_refused_at_submit(wdl_services: AppContext, api: httpx.AsyncClient) -> None:
    missing, text = missing_image_text()
    form = {
        "workflow_type": "WDL",
        "workflow_type_version": "1.1",
        "workflow_url": "in_container.wdl",
        "workflow_params": json.dumps({"where.message": "x"}),
    }
    files = {"workflow_attachment": ("in_container.wdl", text.encode())}
    response = await api.post(f"{WES}/runs", data=form, files=files)
    # ValidationFailed: 422 on the rest of the API; the WES contract has no 422, so WES says 400.
    assert response.status_code == 400, response.text
    message = response.json()["msg"]
    assert missing in message
    assert "flowdeck images import" in message
    assert "registry.example.org/mirror" in message
    assert (await api.get(f"{WES}/runs")).json()["runs"] == []


async def test_the_jobs_api_refuses_a_missing_image_with_422(
    wdl_services: AppContext, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The same refusal through a catalogued pipeline: /jobs answers problem details, 422."""
    catalog = Path(__file__).resolve().parents[2] / "src" / "flowdeck" / "catalog"
    folder = tmp_path / "catalog"
    (folder / "workflows" / "hello_wdl").mkdir(parents=True)
    (folder / "hello_wdl.yaml").write_text((catalog / "hello_wdl.yaml").read_text())
    missing = f"localhost/flowdeck-missing:{uuid.uuid4().hex[:8]}"
    wdl = (catalog / "workflows" / "hello_wdl" / "hello.wdl").read_text()
    boxed = wdl.replace("task greet {", f'task greet {{\n  runtime {{ docker: "{missing}" }}', 1)
    assert boxed != wdl
    (folder / "workflows" / "hello_wdl" / "hello.wdl").write_text(boxed)
    wdl_services.catalog = Catalog.load(folder)
    body = {"pipeline_name": "hello_wdl", "parameters": {"message": "x", "times": 1}, "research_group": "lab"}
    response = await api.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert missing in response.json()["detail"]
    assert "flowdeck images import" in response.json()["detail"]
    assert (await api.get("/jobs")).json()["total"] == 0
