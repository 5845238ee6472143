#!/usr/bin/env bash
# Where a serial put through a follower spends its time between the members, for Capstan and for
# etcd 3.4 side by side: a fresh 3-member cluster of each (one after the other), the same warm-up,
# then a tcpdump of the loopback traffic during serial puts through a follower, split into steps
# by bench/put-steps.py (README, performance, "A put through a follower, step by step").
#
#   mvn -B -q package -DskipTests && bench/put-steps.sh [capstan|etcd|both] [JVM options for Capstan]
#
# KEEP=<dir> keeps the tcpdump output there (<dir>/capstan.txt, <dir>/etcd.txt). GC=1 has
# Capstan's members log their GC pauses and safepoints, and counts how many of the slowest puts
# overlap one. SCHED=1 records the scheduler's switches and wake-ups during the puts (perf, to
# /dev/shm) and prints what the CPUs ran, and which threads waited for one, during the longest step
# of each of the slowest puts, against the middle ones (by process, then by thread).
# FULL_WARM_UP=1 gives each cluster compare.sh's warm-up (warm_up in members.sh) first.
# Needs tcpdump (apt-get install -y tcpdump), root (or CAP_NET_RAW) and etcd (etcd-server).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
command -v tcpdump > /dev/null || { echo "tcpdump not found: apt-get install -y tcpdump" >&2; exit 1; }
which=${1:-both}; opts=${2:-}
base=28790
work="$(mktemp -d)"
pids=()
dump=""
rec=""
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap '[ -n "$dump" ] && kill "$dump" 2>/dev/null; [ -n "$rec" ] && kill "$rec" 2>/dev/null; rm -f /dev/shm/put-steps-$$.data; stop_members; rm -rf "$work"' EXIT

steps() {
  local system=$1 lead follower other e
  local gclogs=()
  if [ "$system" = capstan ]; then
    if [ -n "${GC:-}" ]; then
      start_members "${opts:+$opts }-Xlog:gc,safepoint:file=$work/gc-%p.log:time"
      gclogs=("$work"/gc-*.log)
    else
      start_members "$opts"
    fi
  else
    start_etcd "$base"
  fi
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { [ -z "${follower:-}" ] && follower=$e || other=$e; }; done
  # FULL_WARM_UP=1: first the warm-up compare.sh gives (members.sh's warm_up: puts, ranges and
  # twelve runs to 1,000 watchers), to see whether what it leaves behind slows the serial puts
  [ -n "${FULL_WARM_UP:-}" ] && warm_up "$eps"
  # warm-up: puts with 64 in flight, then serial puts through the follower (JIT of both paths)
  bench put --endpoints "$eps" --clients 64 --total 40000 --warmup 0 > /dev/null
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 8000 --warmup 0 > /dev/null
  tcpdump -i lo -n -tt -q "tcp portrange $base-$((base + 12)) and tcp[tcpflags] & tcp-push != 0" \
    > "$work/$system.txt" 2> /dev/null &
  dump=$!
  local sched=()
  if [ -n "${SCHED:-}" ]; then
    # CLOCK_MONOTONIC (perf cannot stamp with the wall clock here), mapped to tcpdump's wall clock
    perf record -k mono -a -m 16M -e sched:sched_switch -e sched:sched_wakeup -o "/dev/shm/put-steps-$$.data" > /dev/null 2>&1 &
    rec=$!
    sched=(--sched "$work/$system.sched" --offset "$(python3 -c 'import time; print(time.time() - time.clock_gettime(time.CLOCK_MONOTONIC))')")
    for e in 0 1 2; do sched+=(--member "${pids[$e]}" "$(member_role "$e")"); done
    sched+=(--threads "$work/$system.threads")
  fi
  sleep 1
  local ticks0 ticks1
  ticks0=$(cpu_ticks)
  echo -n "$system, client: "
  # the client warms itself up until its JIT is quiet (ClientWarmUp): the CPU is over its warm-up
  # puts too, whose count it prints on stderr
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 3000 --warmup 100 2> "$work/client.err"
  ticks1=$(cpu_ticks)
  local warm
  warm=$(sed -nE 's/.*client warm-up ([0-9]+) operations.*/\1/p' "$work/client.err")
  cat "$work/client.err" >&2
  echo "$system, CPU of the 3 members a put: $(( (ticks1 - ticks0) * 1000000 / $(getconf CLK_TCK) / (${warm:-100} + 3000) )) µs"
  sleep 1
  kill "$dump"; wait "$dump" 2>/dev/null || true; dump=""
  if [ -n "$rec" ]; then
    kill -INT "$rec"; wait "$rec" 2>/dev/null || true; rec=""
    perf script -i "/dev/shm/put-steps-$$.data" -F pid,tid,cpu,time,event,trace > "$work/$system.sched" 2> /dev/null
    # the members' full thread names (the kernel keeps 15 characters): tid name, from thread dumps
    for e in "${pids[@]}"; do
      [ "$system" = capstan ] || break  # etcd's threads are all "etcd"
      jcmd "$e" Thread.print 2> /dev/null | sed -nE 's/^"([^"]*)".* nid=0x([0-9a-f]+).*/\2 \1/p' |
        while read -r nid name; do echo "$((16#$nid)) $name"; done
    done > "$work/$system.threads"
    rm -f "/dev/shm/put-steps-$$.data"
  fi
  python3 "$root/bench/put-steps.py" "$system" "$work/$system.txt" "${follower##*:}" "${lead##*:}" "${other##*:}" "${gclogs[@]}" --last 3000 "${sched[@]}"
  if [ -n "${KEEP:-}" ]; then cp "$work/$system.txt" "$KEEP/"; fi
  stop_members
  rm -rf "$work"/m* "$work"/e* "$work"/gc-*
}

[ "$which" = etcd ] || steps capstan
[ "$which" = capstan ] || steps etcd
