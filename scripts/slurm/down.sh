#!/usr/bin/env bash
# down.sh - stop the cluster that up.sh started in SLURM_ROOT: cancel its jobs, stop slurmd,
# slurmctld and munged by their pid files. The folder is kept (logs); remove it yourself.
set -uo pipefail

: "${SLURM_ROOT:=${TMPDIR:-/tmp}/flowdeck-slurm}"
RUN="$SLURM_ROOT/run"

log() { printf '[slurm down %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

stop() {
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { log "pid $pid did not stop on TERM, killing"; kill -KILL "$pid"; }
    fi
    rm -f "$pidfile"
}

if [ -f "$SLURM_ROOT/slurm.conf" ] && [ -f "$RUN/slurmctld.pid" ]; then
    SLURM_CONF="$SLURM_ROOT/slurm.conf" timeout 10 scancel --full --quiet --state=PENDING,RUNNING,SUSPENDED -u root 2>/dev/null || true
    for user in $(SLURM_CONF="$SLURM_ROOT/slurm.conf" timeout 10 squeue -h -o '%u' 2>/dev/null | sort -u); do
        SLURM_CONF="$SLURM_ROOT/slurm.conf" timeout 10 scancel --quiet -u "$user" 2>/dev/null || true
    done
fi
stop "$RUN/slurmd.pid"
stop "$RUN/slurmctld.pid"
stop "$SLURM_ROOT/munge/munged.pid"
# A configless slurmd (up.sh SLURM_CONFIGLESS=1) linked /run/slurm/conf to its cache here.
case "$(readlink /run/slurm/conf 2>/dev/null)" in "$SLURM_ROOT"/*) rm -f /run/slurm/conf ;; esac
log "Slurm in $SLURM_ROOT stopped"
