#!/usr/bin/env bash
# Stop the daemons started by setup_cluster.sh (slurmd, slurmctld, munged), by their pid files.
# Packages, /etc/slurm and the job state stay, so setup_cluster.sh brings it back in seconds.
set -uo pipefail
for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
done
echo "teardown_cluster: stopped" >&2
