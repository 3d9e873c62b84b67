#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py and for trying +launcher=slurm:
#   .ci/slurm_cluster.sh start    install slurm-wlm and munge where missing, write slurm.conf for this
#                                 machine (one node: its host name, cores and memory; one partition,
#                                 debug; no accounting), start munged, slurmctld and slurmd, and wait
#                                 until the node is idle (about 10 s; the first time, the install too)
#   .ci/slurm_cluster.sh stop     stop what start started
#   .ci/slurm_cluster.sh status   one line; exit 0 when the node takes jobs
# start and stop as root (make cluster, make cluster-stop). Each may be run again: start on a running
# cluster checks it (and applies a changed configuration). What it cannot do, it says in one line, exit 1.
# A slurm.conf that this script did not write (a real cluster's) is never touched.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by .ci/slurm_cluster.sh of fmnist_scaling"
STATE=/var/lib/slurm/fmnist_scaling # the controller's and the node's state; whether start started munged
LOGS=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
CTLD_PORT=6817 # SLURM's default ports
SLURMD_PORT=6818
WAIT_S=${SLURM_CLUSTER_WAIT_S:-60}

say() { echo "slurm cluster: $*"; }
fail() {
  echo "slurm cluster: $*" >&2
  exit 1
}
node() { hostname -s; }

# the node's state as sinfo has it (idle, mixed, allocated, down*, drained, ...); empty if none answers
node_state() { timeout 10 sinfo -h -n "$(node)" -o %T 2>/dev/null | head -n1 || true; }
takes_jobs() { case "$(node_state)" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac }

running() { # pid file: the daemon it names is alive
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

port_taken() { # something listens on TCP port $1 (IPv4 or IPv6)
  awk -v port=":$(printf '%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == port { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

status() {
  command -v sinfo >/dev/null || { say "not installed (no sinfo); make cluster installs and starts it"; return 1; }
  local state
  state=$(node_state)
  [ -n "$state" ] || { say "not running (no controller knows node $(node)); make cluster starts it"; return 1; }
  say "node $(node) $state; $(timeout 10 sinfo -h -n "$(node)" -o 'partition %P, %c CPUs, %m MB' | head -n1)"
  takes_jobs
}

install() {
  local missing="" tool
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || missing="$missing $tool"
  done
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || fail "cannot install:$missing missing, and no apt-get to install slurm-wlm and munge"
  say "installing slurm-wlm and munge (missing:$missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; } ||
    fail "apt-get could not install slurm-wlm and munge"
}

# slurm.conf for this machine; returns 0 when it changed (or is new)
write_conf() {
  local hw cpus memory
  hw=$(slurmd -C | head -n1) # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=<MB>: what slurmd finds
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  memory=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  [ -n "$cpus" ] && [ -n "$memory" ] || fail "slurmd -C did not say this machine's cores and memory: $hw"
  mkdir -p "$(dirname "$CONF")" "$LOGS" "$STATE/slurmctld" "$STATE/slurmd"
  cat >"$CONF.new" <<EOF
$MARK
# One node, this machine ($(node)), one partition, no accounting: sacct has no records (the sweeps
# read job states from squeue). docs/configuration.md, "A SLURM cluster on this machine".
ClusterName=fmnist_scaling
SlurmctldHost=$(node)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits this long before it may start again (SLURM's default: 120 s)
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# pending jobs (a requeued one) looked at every 2 s, not every 60: one node, few jobs
SchedulerParameters=sched_interval=2,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# SIGTERM, then SIGKILL this much later (scancel, requeue, time limit): SLURM's default
KillWait=30
$(sed 's/ UpTime=.*//' <<<"$hw") NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$(node) Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$CONF.new" "$CONF"; then
    rm -f "$CONF.new"
    return 1
  fi
  mv "$CONF.new" "$CONF"
}

start_munge() {
  if timeout 10 munge -n </dev/null 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1; then
    return 0 # a munged answers already: this script's, or the machine's
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || fail "cannot create /etc/munge/munge.key"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged </dev/null >/dev/null 2>&1 || fail "munged did not start (see /var/log/munge/munged.log)"
  touch "$STATE/munged"
  for _ in $(seq 20); do
    timeout 10 munge -n </dev/null 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  fail "munged started but does not answer (see /var/log/munge/munged.log)"
}

start() {
  [ "$(id -u)" = 0 ] || fail "start needs root (it installs packages and starts daemons): sudo make cluster"
  if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
    fail "$CONF was not written by this script (a real cluster's?): left alone, nothing started"
  fi
  install
  local changed=0 ctld=0 slurmd=0
  running "$CTLD_PID" && ctld=1
  running "$SLURMD_PID" && slurmd=1
  [ $ctld = 1 ] || ! port_taken $CTLD_PORT || fail "port $CTLD_PORT (slurmctld) is taken by another program; stop it first"
  [ $slurmd = 1 ] || ! port_taken $SLURMD_PORT || fail "port $SLURMD_PORT (slurmd) is taken by another program; stop it first"
  mkdir -p "$STATE"
  write_conf && changed=1
  if [ $ctld = 1 ] && [ $slurmd = 1 ] && [ $changed = 0 ] && takes_jobs; then
    status
    return 0
  fi
  start_munge
  [ $ctld = 1 ] || slurmctld </dev/null >/dev/null 2>&1 || fail "slurmctld did not start (see $LOGS/slurmctld.log)"
  [ $slurmd = 1 ] || slurmd </dev/null >/dev/null 2>&1 || fail "slurmd did not start (see $LOGS/slurmd.log)"
  if [ $changed = 1 ] && [ $ctld = 1 ]; then
    scontrol reconfigure >/dev/null || fail "scontrol reconfigure refused the new $CONF (see $LOGS/slurmctld.log)"
  fi
  local state=""
  for _ in $(seq $((WAIT_S * 2))); do
    state=$(node_state)
    case "$state" in
    idle) break ;;
    down* | drain* | fail*) scontrol update NodeName="$(node)" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  takes_jobs || fail "node $(node) is ${state:-unknown}, not idle, after ${WAIT_S} s (see $LOGS/slurmctld.log, slurmd.log)"
  status
}

stop_daemon() { # name, pid file
  local pid
  running "$2" || return 0
  pid=$(cat "$2")
  kill "$pid"
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  fail "$1 (pid $pid) did not stop"
}

stop() {
  [ "$(id -u)" = 0 ] || fail "stop needs root: sudo make cluster-stop"
  if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
    fail "$CONF was not written by this script: that cluster is not this script's to stop"
  fi
  stop_daemon slurmd "$SLURMD_PID"
  stop_daemon slurmctld "$CTLD_PID"
  if [ -f "$STATE/munged" ]; then # only a munged that start started
    stop_daemon munged /run/munge/munged.pid
    rm -f "$STATE/munged"
  fi
  say "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
