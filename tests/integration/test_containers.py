"""Containers through podman, for real: a CWL tool with a DockerRequirement on an image the
test set-up builds from Debian packages (mmdebstrap → podman import, once per machine:
the root file system tar is cached), a missing image refused at submit, ``flowdeck images``."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from flowdeck.backends.local import containers
from flowdeck.backends.registry import Registry, load_class
from flowdeck.cli.main import main
from flowdeck.domain.runs import RunSpec
from flowdeck.domain.states import State
from flowdeck.errors import ValidationFailed
from flowdeck.services.core.context import AppContext
from flowdeck.settings import Settings
from tests.contract import contract

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (make install)"),
    pytest.mark.skipif(not load_class("cwltool").available(), reason="cwltool is not installed"),
]

WES = "/ga4gh/wes/v1"
TOOL = Path(__file__).resolve().parents[1] / "workflows" / "containers" / "in_container.cwl"
IMAGE = "localhost/flowdeck-test:bookworm"
ROOTFS = Path(tempfile.gettempdir()) / "flowdeck-test-images" / "bookworm-coreutils.tar"
# The images shared with sandboxed runs: one store per machine (a run's first use copies them).
SANDBOX_IMAGES = Path(tempfile.gettempdir()) / "flowdeck-test-images" / "sandbox-images"


def rootfs() -> Path:
    """A Debian 12 root file system with coreutils, built once per machine (~10 s to minutes)."""
    if not ROOTFS.is_file():
        if shutil.which("mmdebstrap") is None:
            pytest.skip("mmdebstrap is not installed (make install)")
        ROOTFS.parent.mkdir(parents=True, exist_ok=True)
        partial = ROOTFS.with_suffix(".partial.tar")
        done = subprocess.run(
            ["mmdebstrap", "--variant=essential", "--include=coreutils", "bookworm", str(partial)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"mmdebstrap could not build the test image (Debian mirror unreachable?): {done.stderr[-300:]}")
        partial.rename(ROOTFS)
    return ROOTFS


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test image, imported into podman unless it is there already."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("images"))
    if not containers.image_exists(settings, IMAGE):
        containers.import_image(settings, rootfs(), IMAGE)
    return IMAGE


def tool_spec(data: Path, workflow: str = "in_container.cwl") -> RunSpec:
    folder = data / "runs" / "c1"
    (folder / "attachments").mkdir(parents=True)
    shutil.copy(TOOL, folder / "attachments" / "in_container.cwl")
    return RunSpec(
        run_id="c1",
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url=workflow,
        workflow_params={"message": "hello podman"},
        workdir=folder / "work",
        attachments_dir=folder / "attachments",
    )


def test_a_docker_requirement_runs_in_the_image_under_podman(tmp_path: Path, test_image: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", containers=True, container_sandbox_images=SANDBOX_IMAGES)
    backend = load_class("cwltool")(settings)
    report = contract.wait_done(backend, contract.submit(backend, tool_spec(settings.data_dir)), 180)
    assert report.state is State.COMPLETE, report
    found = [f for f in report.output_files or [] if f.name.endswith("where.txt")]
    lines = Path(found[0].location).read_text().splitlines()
    assert lines[:2] == ["message: hello podman", "where: container"]
    assert "Debian" in lines[2]
    conf = settings.data_dir / "containers" / "containers.conf"
    assert "default_ulimits = []" in conf.read_text()


def test_without_containers_the_same_tool_is_refused(tmp_path: Path) -> None:
    """The control: containers off, a DockerRequirement is a refusal, not a run on the host."""
    backend = load_class("cwltool")(Settings(data_dir=tmp_path / "data"))
    with pytest.raises(Exception, match="containers are off"):
        backend.validate(tool_spec(tmp_path / "data"))


@pytest.fixture
def container_services(services: AppContext) -> AppContext:
    services.settings.backends = ["demo", "cwltool"]
    services.settings.containers = True
    services.settings.container_registry = "registry.example.org/mirror"
    services.backends = Registry(services.settings)
    return services


async def test_a_missing_image_is_refused_at_submit(container_services: AppContext, api: httpx.AsyncClient) -> None:
    missing = f"localhost/flowdeck-missing:{uuid.uuid4().hex[:8]}"
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "in_container.cwl",
        "workflow_params": json.dumps({"message": "x"}),
    }
    tool = TOOL.read_text().replace(IMAGE, missing).encode()
    response = await api.post(f"{WES}/runs", data=form, files={"workflow_attachment": ("in_container.cwl", tool)})
    # ValidationFailed: 422 on the rest of the API; the WES contract has no 422, so WES says 400.
    assert response.status_code == 400, response.text
    message = response.json()["msg"]
    assert missing in message
    assert "flowdeck images import" in message
    assert "registry.example.org/mirror" in message
    assert (await api.get(f"{WES}/runs")).json()["runs"] == []
    runs = container_services.runs_dir
    assert not runs.exists() or not any(runs.iterdir())


def test_the_refusal_is_a_validation_failure(tmp_path: Path) -> None:
    backend = load_class("cwltool")(Settings(data_dir=tmp_path / "data", containers=True))
    spec = tool_spec(tmp_path / "data")
    text = TOOL.read_text().replace(IMAGE, "localhost/flowdeck-missing:0")
    (spec.attachments_dir / "in_container.cwl").write_text(text)
    with pytest.raises(ValidationFailed, match="localhost/flowdeck-missing:0") as caught:
        backend.validate(spec)
    assert caught.value.status_code == 422


def test_images_import_then_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWDECK_DATA_DIR", str(tmp_path / "data"))
    name = f"localhost/flowdeck-cli-test:{uuid.uuid4().hex[:8]}"
    try:
        assert main(["images", "import", str(rootfs()), "--name", name]) == 0
        capsys.readouterr()
        assert main(["images", "list"]) == 0
        listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
        assert name in listed
    finally:
        containers.podman(Settings(data_dir=tmp_path / "data"), "rmi", "--force", name)


def test_an_image_archive_is_loaded_under_the_name_given(tmp_path: Path, test_image: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    archive = tmp_path / "image.tar"
    saved = containers.podman(settings, "save", "--output", str(archive), test_image, timeout=300)
    assert saved.returncode == 0, saved.stderr
    name = f"localhost/flowdeck-load-test:{uuid.uuid4().hex[:8]}"
    try:
        assert containers.import_image(settings, archive, name) == name
        assert name in [image["name"] for image in containers.list_images(settings)]
    finally:
        containers.podman(settings, "rmi", "--force", name)


def test_a_root_file_system_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="give it a --name"):
        containers.import_image(Settings(data_dir=tmp_path / "data"), rootfs(), None)


async def test_service_info_says_whether_containers_are_on(services: AppContext, api: httpx.AsyncClient) -> None:
    assert (await api.get(f"{WES}/service-info")).json()["tags"]["containers"] == "off (FLOWDECK_CONTAINERS=false)"
    services.settings.containers = True
    assert (await api.get(f"{WES}/service-info")).json()["tags"][
        "containers"
    ] == "podman (CWL DockerRequirement, WDL runtime container)"
