"""Containers through podman: the one place flowdeck runs ``podman`` (docs/adr/0013).

Podman on these machines needs a runtime and cgroup manager of its own
(``settings.podman_options``) and a ``containers.conf`` without default ulimits (the
service may not raise them). flowdeck writes that file into its data folder and points
podman at it with ``CONTAINERS_CONF``; /etc is never edited. Engines find podman as
``podman`` on their PATH: :func:`podman_env` puts a small wrapper first on it that adds
those options, so cwltool's ``--podman`` (and any engine calling ``podman``) gets them.

Inside a run's sandbox (root service, docs/adr/0013) the engine runs podman rootless as the
sandbox user: :func:`sandbox_binds` mounts a second wrapper and configuration over the
first ones, giving podman the run's own storage and runroot in its private ``/tmp``, and
the images flowdeck shares read-only (``settings.container_sandbox_images``), filled from
the service's podman by :func:`share_images` the first time a run needs one.

Images are named as a workflow names them (``dockerPull``/``dockerImageId``); one that is
neither present locally (``podman image exists``) nor reachable is refused at submit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

from flowdeck.backends.local import sandbox
from flowdeck.errors import ConfigurationError, InvalidInput, ValidationFailed
from flowdeck.settings import Settings

CONF_TEXT = (
    "[containers]\n# The service may not raise rlimits here: no ulimits added to containers.\ndefault_ulimits = []\n"
)
# No /var/tmp in a sandbox: podman unpacks images in the run's private /tmp.
SANDBOX_CONF_TEXT = CONF_TEXT + '[engine]\nimage_copy_tmp_dir = "/tmp"\n'
# Rootless podman as the sandbox user: without subordinate ids it maps that one user, so the
# images' files cannot keep their owners (they all become the container's root).
SANDBOX_STORAGE = ("--storage-driver", "overlay", "--storage-opt", "overlay.ignore_chown_errors=true")
# What rootless podman needs of the host besides /usr: its configuration, and a sysfs the
# kernel lets a nested user namespace mount again (read-only; no user data there).
SANDBOX_HOST_PATHS = ("/etc/containers", "/sys")
# A run's own podman storage: its private /tmp (the engines do not pass the environment on
# to podman; a tmpfs holds only the containers' small upper layers: images are shared).
SANDBOX_STORAGE_ROOT = "/tmp/.podman-storage"  # noqa: S108
_TIMEOUT = 600  # seconds for an import; podman commands that only ask are quick


def podman_path() -> str:
    """The podman executable, or ConfigurationError when it is not installed."""
    found = shutil.which("podman")
    if found is None:
        raise ConfigurationError("containers are on (FLOWDECK_CONTAINERS) but podman is not installed on this worker")
    return found


def conf_dir(settings: Settings) -> Path:
    """``data_dir/containers``: containers.conf and the podman wrapper, (re)written when they differ."""
    folder = settings.data_dir / "containers"
    conf = folder / "containers.conf"
    wrapper = folder / "bin" / "podman"
    _write_if_changed(conf, CONF_TEXT, 0o644)
    _write_if_changed(wrapper, _wrapper_text(settings, conf), 0o755)
    return folder


def _wrapper_text(settings: Settings, conf: Path) -> str:
    options = " ".join(shlex.quote(o) for o in shlex.split(settings.podman_options))
    podman = f"{shlex.quote(podman_path())} {options}"
    return (
        "#!/bin/sh\n"
        "# cwltool asks for --userns=keep-id, which rootful podman refuses; as root it changes nothing.\n"
        'for a; do shift; [ "$a" = --userns=keep-id ] && [ "$(id -u)" = 0 ] || set -- "$@" "$a"; done\n'
        f"export CONTAINERS_CONF={shlex.quote(str(conf))}\n"
        "# miniwdl pulls before every task: an image podman has (imported) is not pulled again.\n"
        f'[ "$1" = pull ] && [ $# = 2 ] && {podman} image exists "$2" && exit 0\n'
        "# FLOWDECK_PODMAN_NETWORK (miniwdl runs: none) is the network of the containers it runs.\n"
        'if [ "$1" = run ] && [ -n "$FLOWDECK_PODMAN_NETWORK" ]; then\n'
        '  shift; set -- run --network="$FLOWDECK_PODMAN_NETWORK" "$@"\n'
        "fi\n"
        f'exec {podman} "$@"\n'
    )


def _sandbox_wrapper_text(settings: Settings, conf: Path) -> str:
    podman = shlex.join([podman_path(), *_sandbox_options(settings), f"--root={SANDBOX_STORAGE_ROOT}"])
    return (
        "#!/bin/sh\n"
        "# Rootless podman inside a run's sandbox (docs/adr/0013): the run's storage, the shared images.\n"
        f"export CONTAINERS_CONF={shlex.quote(str(conf))} XDG_RUNTIME_DIR=/tmp/.podman-xdg\n"
        'mkdir -p -m 700 "$XDG_RUNTIME_DIR"\n'
        "# One id is mapped (no subordinate ids): the container's root is the sandbox user, so\n"
        "# cwltool's --userns=keep-id (which needs more ids) goes and its --user becomes 0:0;\n"
        "# only options before the image (the first plain word after the command) are read.\n"
        "opts=; command=1\n"
        'for a; do shift; if [ -n "$opts" ]; then case "$a" in\n'
        "  --userns=keep-id) continue ;; --user=*) a=--user=0:0 ;; -*) ;; *) opts= ;; esac; fi\n"
        '  [ -n "$command" ] && opts=1 command=; set -- "$@" "$a"; done\n'
        f'[ "$1" = pull ] && [ $# = 2 ] && {podman} image exists "$2" && exit 0\n'
        'if [ "$1" = run ] && [ -n "$FLOWDECK_PODMAN_NETWORK" ]; then\n'
        '  shift; set -- run --network="$FLOWDECK_PODMAN_NETWORK" "$@"\n'
        "fi\n"
        f'exec {podman} "$@"\n'
    )


def _sandbox_options(settings: Settings, shared: bool = True) -> list[str]:
    """podman's options in a sandbox (storage root aside): the shared images read-only unless filling them."""
    options = [*shlex.split(settings.podman_options), "--runroot=/tmp/.podman-run", *SANDBOX_STORAGE]
    return options + (["--storage-opt", f"overlay.imagestore={sandbox_store(settings)}"] if shared else [])


def sandbox_store(settings: Settings) -> Path:
    """The images runs share read-only, in the sandbox user's podman storage."""
    top = settings.container_sandbox_images or settings.data_dir / "containers" / "sandbox-images"
    return top / "storage"


def sandbox_binds(settings: Settings) -> list[list[str]]:
    """What a containerised run's sandbox plan adds: the in-sandbox wrapper and configuration
    mounted over the service's (so the engine's ``podman`` is the rootless one), the shared
    images and the host paths podman needs, all read-only."""
    folder = conf_dir(settings)
    conf, wrapper = folder / "sandbox" / "containers.conf", folder / "sandbox" / "podman"
    _write_if_changed(conf, SANDBOX_CONF_TEXT, 0o644)
    _write_if_changed(wrapper, _sandbox_wrapper_text(settings, folder / "containers.conf"), 0o755)
    store = sandbox_store(settings)
    store.mkdir(parents=True, exist_ok=True)
    binds = [["ro", str(conf), str(folder / "containers.conf")], ["ro", str(wrapper), str(folder / "bin" / "podman")]]
    binds.append(["ro", str(store), str(store)])
    return binds + [["ro", path, path] for path in SANDBOX_HOST_PATHS if os.path.exists(path)]


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")  # one per writer
    partial.write_text(text, encoding="utf-8")
    partial.chmod(mode)
    partial.replace(path)  # atomic: a run starting meanwhile sees the old file or the new one


def podman_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the podman wrapper first on PATH and CONTAINERS_CONF set."""
    folder = conf_dir(settings)
    path = os.pathsep.join([str(folder / "bin"), env.get("PATH", os.environ.get("PATH", ""))])
    return {**env, "PATH": path, "CONTAINERS_CONF": str(folder / "containers.conf")}


def podman(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` through the wrapper; output captured, never raises on exit code."""
    wrapper = conf_dir(settings) / "bin" / "podman"
    env = podman_env(settings, dict(os.environ))
    return subprocess.run([str(wrapper), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def image_exists(settings: Settings, image: str) -> bool:
    """Whether podman has ``image`` locally."""
    return podman(settings, "image", "exists", image).returncode == 0


def check_images(settings: Settings, images: set[str], notes: dict[str, str] | None = None) -> None:
    """ValidationFailed (422) naming each image podman does not have, and how to get it.

    ``notes`` may say why an image is needed (for one the workflow does not name itself)."""
    missing = sorted(image for image in images if not image_exists(settings, image))
    if not missing:
        return
    named = [f"{image} ({notes[image]})" if notes and image in notes else image for image in missing]
    where = (
        f"the registry {settings.container_registry} may hold it, but images are not pulled at submit"
        if settings.container_registry
        else "no container registry is configured (FLOWDECK_CONTAINER_REGISTRY)"
    )
    raise ValidationFailed(
        f"container image {', '.join(named)} is not available on this service ({where}); "
        "an operator can add it with `flowdeck images import FILE --name NAME`"
    )


def import_image(settings: Settings, archive: Path, name: str | None) -> str:
    """Load an image archive (``podman load``) or import a root file system tar (``podman import``).

    An image archive (``podman save``/``docker save``) has a ``manifest.json`` or
    ``index.json`` at its top; anything else is taken as a root file system and needs
    ``name``. Returns podman's answer (the image's name or id)."""
    if not archive.is_file():
        raise InvalidInput(f"{archive} is not a file")
    if _is_image_archive(archive):
        done = podman(settings, "load", "--input", str(archive), timeout=_TIMEOUT)
        if done.returncode == 0 and name:
            # "Loaded image: NAME" (or "Loaded image(s): NAME,..."): the first one gets the name.
            loaded = done.stdout.strip().splitlines()[-1].split(": ", 1)[-1].split(",")[0].strip()
            done = podman(settings, "tag", loaded, name)
    else:
        if not name:
            raise InvalidInput(f"{archive.name} is a root file system, not an image archive: give it a --name")
        done = podman(settings, "import", str(archive), name, timeout=_TIMEOUT)
    if done.returncode != 0:
        raise InvalidInput(f"podman could not import {archive.name}: {done.stderr.strip()[-500:]}")
    return name or done.stdout.strip()


def _is_image_archive(archive: Path) -> bool:
    try:
        with tarfile.open(archive) as tar:
            return any(n.lstrip("./") in {"manifest.json", "index.json"} for n in tar.getnames()[:200])
    except tarfile.TarError as exc:
        raise InvalidInput(f"{archive.name} is not a tar archive: {exc}") from None


def list_images(settings: Settings) -> list[dict[str, str]]:
    """The images podman has: name (repository:tag), id and size."""
    done = podman(settings, "images", "--format", "{{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}")
    if done.returncode != 0:
        raise ConfigurationError(f"podman images failed: {done.stderr.strip()[-500:]}")
    rows = [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
    return [{"name": row[0], "id": row[1], "size": row[2]} for row in rows if len(row) == 3]


def share_images(settings: Settings, images: set[str], user: tuple[int, int]) -> None:
    """Copy each of ``images`` from the service's podman into the shared sandbox store, once
    (a marker per image name and id; a re-imported image is copied again)."""
    store = sandbox_store(settings)
    top = store.parent
    control = top / ".flowdeck"
    (control / "shared").mkdir(parents=True, exist_ok=True)
    for folder in (top, store):
        folder.mkdir(exist_ok=True)
        os.chown(folder, *user)
    with open(control / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one copy at a time; podman's storage is not shared by processes here
        for image in sorted(images):
            image_id = podman(settings, "image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
            marker = control / "shared" / hashlib.sha256(f"{image}\n{image_id}".encode()).hexdigest()
            if image_id and not marker.exists():
                _share(settings, image, image_id, user)
                marker.touch()


def _share(settings: Settings, image: str, image_id: str, user: tuple[int, int]) -> None:
    store = sandbox_store(settings)
    top = store.parent
    export = top / "export"
    shutil.rmtree(export, ignore_errors=True)
    saved = podman(
        settings, "save", "--uncompressed", "--format", "oci-dir", "--output", str(export), image, timeout=_TIMEOUT
    )
    try:
        if saved.returncode != 0:
            raise ConfigurationError(f"podman could not export {image} for the sandbox: {saved.stderr.strip()[-500:]}")
        for path in [export, *export.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        control = top / ".flowdeck"
        sandbox.write_identity(control, *user)
        plan = sandbox.make_plan(top, [export], [], user, False, {})
        plan["binds"] += [bind for bind in sandbox_binds(settings) if bind[2] != str(store)]  # rw: it is the rundir
        plan["nested"] = True
        (control / sandbox.PLAN_FILE).write_text(json.dumps(plan), encoding="utf-8")
        podman_cmd = shlex.join([podman_path(), *_sandbox_options(settings, shared=False), f"--root={store}"])
        script = (
            f"export CONTAINERS_CONF={shlex.quote(str(conf_dir(settings) / 'containers.conf'))} "
            "HOME=/tmp XDG_RUNTIME_DIR=/tmp/.podman-xdg && mkdir -p -m 700 $XDG_RUNTIME_DIR && "
            f"{podman_cmd} pull -q oci:{shlex.quote(str(export))} && {podman_cmd} tag {image_id} {shlex.quote(image)}"
        )
        argv = sandbox.wrap(plan, ["sh", "-c", script], as_root=True)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
        if done.returncode != 0:
            raise ConfigurationError(f"the sandbox's podman could not take {image}: {done.stderr.strip()[-500:]}")
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(export)
