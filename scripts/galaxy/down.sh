#!/usr/bin/env bash
# down.sh - stop the Galaxy (and celery worker) that up.sh started from GALAXY_ROOT.
#
#   GALAXY_ROOT=/tmp/fd-galaxy scripts/galaxy/down.sh
#
# Stops by pid file only: SIGTERM, SIGKILL after GALAXY_STOP_TIMEOUT (30) seconds. Then it ends
# whatever is left in each process's session: up.sh starts them with setsid, and the local job
# runner puts every job in its own process group inside that session, which uvicorn's shutdown
# leaves running.
set -uo pipefail
: "${GALAXY_ROOT:=${TMPDIR:-/tmp}/flowdeck-galaxy}"
: "${GALAXY_STOP_TIMEOUT:=30}"
RUN="$GALAXY_ROOT/run"

log() { printf '[galaxy down] %s\n' "$*" >&2; }

session_members() {  # pids whose session id is $1, except ourselves
    ps -e -o pid=,sid= | awk -v sid="$1" -v me="$$" '$2 == sid && $1 != me { print $1 }'
}

stop() {
    local name="$1" pidfile="$RUN/$1.pid" pid sid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    sid="$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')"
    if [ -n "$sid" ]; then
        log "$name: SIGTERM $pid"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 "$GALAXY_STOP_TIMEOUT"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && { log "$name: SIGKILL $pid"; kill -KILL "$pid" 2>/dev/null; }
        # only a session that this process leads (setsid in up.sh) is ours to empty
        if [ "$sid" = "$pid" ]; then
            for left in $(session_members "$sid"); do
                log "$name: ending leftover job process $left"
                kill -KILL "$left" 2>/dev/null
            done
        fi
    fi
    rm -f "$pidfile"
}

stop celery
stop galaxy
log "stopped (root $GALAXY_ROOT)"
