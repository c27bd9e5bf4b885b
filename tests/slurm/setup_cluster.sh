#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for tests/test_slurm.py and for trying the
# SLURM profile by hand. Idempotent: installs what is missing, rewrites the config only when it changed,
# starts only daemons that are not running, and returns when the node is idle.
#
#   sudo tests/slurm/setup_cluster.sh          # -> partitions cpu* (default) and gpu (2 faked A100s)
#   tests/slurm/teardown_cluster.sh            # stops the daemons (packages and config stay)
#
# Needs root and Debian/Ubuntu apt (slurmctld, slurmd, slurm-client, munge). No slurmdbd: run Snakemake
# with `slurm-status-command: squeue` (the SLURM profile sets it). Facts behind every setting:
# docs/cluster.md, "The test cluster's settings" (measured on a CI-like machine). Env: SLURM_CI_GPUS (default 2).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
GPUS=${SLURM_CI_GPUS:-2}
NODE=$(hostname -s)
CONF=/etc/slurm

log() { echo "setup_cluster: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 2; }

# 1. packages (only if missing)
need=()
for bin in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${bin%%:*}" ] || need+=("${bin#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { log "apt-get not available; cannot install ${need[*]}"; exit 3; }
  log "installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. munge
[ -s /etc/munge/munge.key ] || mungekey --create
mkdir -p /run/munge && chown munge:munge /run/munge
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! alive /run/munge/munged.pid; then
  su -s /bin/sh munge -c /usr/sbin/munged
fi

# 3. config (NodeName from the short host name, memory = MemTotal - 1 GiB)
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm "$CONF"
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
CPUS=$(nproc --all)  # --all: not OMP_NUM_THREADS (the test suite sets it to 1)
MEM=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 1024 ))
new=$(mktemp)
cat >"$new" <<CONFEOF
# written by brainalign tests/slurm/setup_cluster.sh
ClusterName=ci
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM Gres=gpu:a100:$GPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
CONFEOF
# faked GPUs: no driver, no device. slurmd wants one character device per GPU (for the index it puts in
# CUDA_VISIBLE_DEVICES); with task/none nothing is ever opened or constrained, so harmless ones do.
fake=(/dev/null /dev/zero /dev/full /dev/urandom)
[ "$GPUS" -ge 1 ] && [ "$GPUS" -le ${#fake[@]} ] || { log "SLURM_CI_GPUS must be 1..${#fake[@]}"; exit 2; }
files=$(IFS=,; echo "${fake[*]:0:$GPUS}")
newg=$(mktemp)
printf 'AutoDetect=off\nNodeName=%s Name=gpu Type=a100 File=%s\n' "$NODE" "$files" >"$newg"
changed=0
cmp -s "$new" "$CONF/slurm.conf" || { install -m 644 "$new" "$CONF/slurm.conf"; changed=1; }
cmp -s "$newg" "$CONF/gres.conf" || { install -m 644 "$newg" "$CONF/gres.conf"; changed=1; }
rm -f "$new" "$newg"

# 4. daemons (a config change needs both restarted: `scontrol reconfigure` is not enough)
stop() { if alive "$1"; then kill "$(cat "$1")"; for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done; fi; }
if [ $changed = 1 ]; then stop /run/slurm/slurmd.pid; stop /run/slurm/slurmctld.pid; fi
alive /run/slurm/slurmctld.pid || /usr/sbin/slurmctld
alive /run/slurm/slurmd.pid || /usr/sbin/slurmd

# 5. wait until the node is idle (timeout: sinfo against a dead slurmctld blocks ~10 s)
for _ in $(seq 120); do
  state=$(timeout 3 sinfo -h -n "$NODE" -o %T 2>/dev/null | sort -u | head -1 || true)
  case "$state" in
    idle|mixed|allocated) log "cluster up: $(sinfo -h -o '%P:%T:%G' | tr '\n' ' ')"; exit 0 ;;
    down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
log "node did not become idle; see /var/log/slurm/slurmctld.log and slurmd.log"
exit 1
