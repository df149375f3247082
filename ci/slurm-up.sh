#!/usr/bin/env bash
# Start a real single-machine SLURM for the tests marked `slurm`: munged, slurmctld
# and slurmd from Debian's packages (slurm-wlm, munge), run as root, on loopback.
#
#   sudo ci/slurm-up.sh          # installs what is missing, starts, waits for an idle node
#   sudo ci/slurm-down.sh        # stops everything, removes state (and our slurm.conf)
#
# Idempotent: run it again and it only checks the node is up. No systemd and no
# cgroups needed (proctrack/linuxproc, task/none): it runs in containers too.
# One partition, `compute` (as in docs/clusters.md): this host with its cores
# (SLURM_CI_CPUS, default all); jobs run as the submitting user; slurmctld and
# slurmd listen on 127.0.0.1. SlurmUser=root: a throw-away CI cluster only.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "slurm-up: run as root" >&2; exit 1; }

STATE=${SLURM_CI_STATE:-/var/spool/sweepengine-ci-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by sweepengine ci/slurm-up.sh"
HOST=$(hostname -s)
CPUS=${SLURM_CI_CPUS:-$(nproc)}
MEM_MB=${SLURM_CI_MEM_MB:-4096}

up() { timeout 10 sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | grep -qxE 'idle|mixed|allocated'; }

if up; then
    echo "slurm-up: node $HOST already up"
    sinfo
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null || ! command -v slurmd >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

# -- munge ------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || \
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; }
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    rm -f /run/munge/munge.socket.2 /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n | unmunge >/dev/null
fi

# -- slurm.conf -------------------------------------------------------------------
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm-up: $CONF exists and is not ours; not touching it" >&2
    exit 1
fi
mkdir -p "$STATE"/{ctld,d,log} /etc/slurm
cat > "$CONF" <<CONF
$MARK
ClusterName=sweepci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups: track job processes through /proc, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# end jobs promptly: SIGTERM at the time limit, SIGKILL 5 s later; forget them 30 s on
KillWait=5
OverTimeLimit=0
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=compute Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

# -- daemons ----------------------------------------------------------------------
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$STATE/slurmctld.pid" || slurmctld
for _ in $(seq 100); do timeout 5 scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
running "$STATE/slurmd.pid" || slurmd

for _ in $(seq 150); do
    up && break
    sleep 0.2
done
if ! up; then
    # a node that came back with an old reason stays down until resumed
    scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true
    for _ in $(seq 100); do up && break; sleep 0.3; done
fi
if ! up; then
    echo "slurm-up: node $HOST did not become idle" >&2
    sinfo -N -l >&2 || true
    tail -n 30 "$STATE"/log/*.log >&2 || true
    exit 1
fi
sinfo
