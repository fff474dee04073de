#!/bin/sh
# What a run may try against the service and other groups. Each probe prints
# "NAME: READ <what it got>" when it got through and "NAME: DENIED" otherwise.
# Arguments: OTHER_RUN_FILE DATA_DIR DATABASE_FILE SECRET_FILE SERVICE_PID PORT
other=$1 data=$2 database=$3 secret=$4 pid=$5 port=$6
probe() {
    name=$1
    shift
    if out=$("$@" 2>/dev/null) && [ -n "$out" ]; then
        echo "$name: READ $(echo "$out" | tr '\n\0' '  ')"
    else
        echo "$name: DENIED"
    fi
}
probe other_run cat "$other"
probe other_runs find "$data/runs" -name '*.txt'
probe data_dir ls -a "$data"
probe database cat "$database"
probe storage_secret cat "$secret"
probe service_proc cat "/proc/$pid/cmdline"
probe service_environ cat "/proc/$pid/environ"
probe network bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && echo connected"
probe user id -u
