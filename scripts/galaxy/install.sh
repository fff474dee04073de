#!/usr/bin/env bash
# install.sh - install a pinned Galaxy server + BioBlend into their own venv.
#
#   scripts/galaxy/install.sh          # idempotent: a no-op when already installed at the pinned versions
#
# Environment:
#   FLOWDECK_GALAXY_VENV    venv path (default: $HOME/.cache/flowdeck/galaxy-venv).
#                           Keep the path stable: console-script shebangs are absolute.
#   FLOWDECK_GALAXY_PYTHON  interpreter that creates the venv (default: python3.11, else python3)
#   GALAXY_VERSION / BIOBLEND_VERSION   pins (default 26.1.1 / 1.9.0, the tested pair)
#
# Needs network access to PyPI once (~3 min, ~1.6 GB). Galaxy itself never needs the internet.
set -euo pipefail

VENV="${FLOWDECK_GALAXY_VENV:-$HOME/.cache/flowdeck/galaxy-venv}"
GALAXY_VERSION="${GALAXY_VERSION:-26.1.1}"
BIOBLEND_VERSION="${BIOBLEND_VERSION:-1.9.0}"
PY="${FLOWDECK_GALAXY_PYTHON:-}"

log() { printf '[galaxy install %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed_versions() {
    "$VENV/bin/python" - 2>/dev/null <<'PY'
from importlib.metadata import version
print(version("galaxy"), version("bioblend"))
PY
}

if [ -x "$VENV/bin/galaxy-web" ] && [ "$(installed_versions || true)" = "$GALAXY_VERSION $BIOBLEND_VERSION" ]; then
    log "galaxy $GALAXY_VERSION + bioblend $BIOBLEND_VERSION already installed in $VENV"
    exit 0
fi

# A lock keeps two concurrent callers (two test sessions) from installing into one venv at once.
mkdir -p "$(dirname "$VENV")"
exec 9> "$VENV.lock"
flock 9
if [ -x "$VENV/bin/galaxy-web" ] && [ "$(installed_versions || true)" = "$GALAXY_VERSION $BIOBLEND_VERSION" ]; then
    log "installed by a concurrent caller"
    exit 0
fi

if [ -z "$PY" ]; then
    PY="$(command -v python3.11 || command -v python3 || true)"
fi
[ -n "$PY" ] || die "no python3 found (set FLOWDECK_GALAXY_PYTHON)"

t0=$(date +%s)
log "installing galaxy==$GALAXY_VERSION bioblend==$BIOBLEND_VERSION into $VENV with $PY (a few minutes)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || die "venv creation failed (Debian: apt-get install python3-venv)"
"$VENV/bin/pip" install --disable-pip-version-check -q \
    "galaxy==$GALAXY_VERSION" "bioblend==$BIOBLEND_VERSION" > "$VENV.install.log" 2>&1 \
    || { tail -40 "$VENV.install.log" >&2; die "pip install failed, see $VENV.install.log"; }
[ "$(installed_versions)" = "$GALAXY_VERSION $BIOBLEND_VERSION" ] || die "versions after install: $(installed_versions)"
log "installed in $(( $(date +%s) - t0 ))s ($(du -sh "$VENV" | cut -f1))"
