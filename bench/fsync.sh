#!/usr/bin/env bash
# How long each member's fdatasync takes during serial puts through a follower, Capstan against
# etcd 3.4 on the same disk: a fresh 3-member cluster of each (one after the other), the
# benchmarks' warm-up, then [puts] serial puts through a follower while `perf trace` records every
# fdatasync of the machine with its duration (a tracepoint: the members are not slowed as under
# strace). Prints per member the calls a put and their p50 / p90 / p99 / max, then the same over
# all three. A slow put's most frequent stall is a follower's write and fsync (history file, "The
# tail of a serial put, step by step"): this says whether the disk or the member is slow there.
#
#   mvn -B -q package -DskipTests && bench/fsync.sh [capstan|etcd|both] [puts, default 3000]
#
# Caveat: on this VM `perf trace` saw 1.3-1.6 calls a put over the three members where each member
# syncs its log once a put (etcd's leader too; `perf stat -e syscalls:sys_enter_fdatasync` counted
# ~2.4 a put on a cold cluster), also with a 16 MB buffer: read the durations as a sample, taken the
# same way for both systems, and the counts as a lower bound.
#
# Needs perf (linux-perf) with the syscall tracepoints, root, and etcd (etcd-server).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
command -v perf > /dev/null || { echo "perf not found: apt-get install -y linux-perf" >&2; exit 1; }
which=${1:-both}
puts=${2:-3000}
base=29790
work="$(mktemp -d)"
pids=()
tracer=""
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap '[ -n "$tracer" ] && kill "$tracer" 2>/dev/null; stop_members; rm -rf "$work"' EXIT

measure() {
  local system=$1 lead follower e i
  if [ "$system" = capstan ]; then start_members ""; else start_etcd "$base"; fi
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
  warm_up "$eps"
  pre_load 1
  perf trace -a -m 16M -e fdatasync -o "$work/$system.trace" &
  tracer=$!
  sleep 2
  echo -n "$system, serial puts through a follower: "
  load "$puts"
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true; tracer=""
  # member i: its pid and role, for the per-member lines
  for i in 0 1 2; do echo "${pids[$i]} $(member_role "$i" | tr ' ' _)"; done > "$work/members"
  python3 - "$work/members" "$work/$system.trace" "$puts" "$system" <<'PY'
import re, sys
members = dict(line.split() for line in open(sys.argv[1]))
puts, system = int(sys.argv[3]), sys.argv[4]
# perf trace lines: "  0.000 ( 0.596 ms): comm/tid fdatasync(fd: 3) = 0"; a thread's process is
# found from /proc at the end (the members still run), so the tid is mapped through its tgid
tids = {}
def tgid(tid):
    if tid not in tids:
        try:
            tids[tid] = next(l.split()[1] for l in open("/proc/%s/status" % tid) if l.startswith("Tgid:"))
        except (OSError, StopIteration):
            tids[tid] = None
    return tids[tid]
by = {}
for line in open(sys.argv[2]):
    m = re.search(r"\(\s*([0-9.]+) ms\): .*?/(\d+) fdatasync", line)
    if m:
        role = members.get(tgid(m.group(2)))
        if role:
            by.setdefault(role, []).append(float(m.group(1)))
def q(v, p):
    return sorted(v)[min(len(v) - 1, int(len(v) * p))]
every = []
for role in sorted(by):
    v = by[role]
    every += v
    print("  %-22s %5.2f a put  p50 %5.2f  p90 %5.2f  p99 %6.2f  max %6.2f ms"
          % (role.replace("_", " "), len(v) / puts, q(v, .5), q(v, .9), q(v, .99), max(v)))
if every:
    print("  %-22s %5.2f a put  p50 %5.2f  p90 %5.2f  p99 %6.2f  max %6.2f ms"
          % ("all three", len(every) / puts, q(every, .5), q(every, .9), q(every, .99), max(every)))
PY
  stop_members
  pids=()
  rm -rf "$work"/m* "$work"/e*
}

[ "$which" = etcd ] || measure capstan
[ "$which" = capstan ] || measure etcd
