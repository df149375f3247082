#!/usr/bin/env bash
# Stop what ci/slurm-up.sh started: cancel every job, stop slurmd, slurmctld and
# munged, remove SLURM's state and the slurm.conf we wrote. Safe to run twice.
set -uo pipefail

[ "$(id -u)" -eq 0 ] || { echo "slurm-down: run as root" >&2; exit 1; }

STATE=${SLURM_CI_STATE:-/var/spool/sweepengine-ci-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by sweepengine ci/slurm-up.sh"

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm-down: $CONF is not ours; leaving that SLURM alone" >&2
    exit 1
fi

if command -v scancel >/dev/null && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
    timeout 20 scancel --full --all 2>/dev/null || true  # --all: every user's jobs (CI only)
    for _ in $(seq 50); do
        [ -z "$(timeout 5 squeue -h 2>/dev/null)" ] && break
        sleep 0.2
    done
fi

stop() {  # stop <pidfile>: TERM, wait up to 10 s, then KILL
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
}
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
stop /run/munge/munged.pid
rm -f /run/munge/munge.socket.2*

if [ -d "$STATE" ]; then
    mkdir -p /tmp/slurm-ci-logs && cp -f "$STATE"/log/*.log /tmp/slurm-ci-logs/ 2>/dev/null
    rm -rf "$STATE"
fi
[ -e "$CONF" ] && rm -f "$CONF"
echo "slurm-down: stopped (logs kept in /tmp/slurm-ci-logs)"
