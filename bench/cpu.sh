#!/usr/bin/env bash
# CPU per put: starts a fresh 3-member kvstore with the given JVM options, warms it up as
# compare.sh does, then runs 20,000 puts with 64 in flight and prints the put rate and the CPU time (user and
# system, from /proc) that the members and the benchmark client spent on them. On a machine whose
# figures drift, CPU per put is steadier than the put rate; still run A and B interleaved.
#
#   mvn -B -q package -DskipTests && bench/cpu.sh ["<JVM options>"] [--leader-only]
#
# --leader-only sends every put to the leader (no follower forwards any write).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
opts="${1:-}"
leader_only=0
[ "${2:-}" = "--leader-only" ] && leader_only=1

base=26790
work="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
hz=$(getconf CLK_TCK)

start_members "$opts"
warm_up "$eps"
[ $leader_only = 1 ] && eps="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"

before=0
for p in "${pids[@]}"; do before=$((before + $(ticks "$p"))); done
bench put --endpoints "$eps" --clients 64 --total 20000 --warmup 0 > "$work/put.txt" &
bp=$!
# the client JVM is the launcher's child; sample its ticks until it exits
client_ticks=0
while kill -0 "$bp" 2>/dev/null; do
  c="$(pgrep -f 'BenchMain put' | head -1 || true)"
  [ -n "$c" ] && client_ticks="$(ticks "$c" 2>/dev/null || echo "$client_ticks")"
  sleep 0.2
done
wait "$bp"
after=0
for p in "${pids[@]}"; do after=$((after + $(ticks "$p"))); done
cat "$work/put.txt"
echo "members: $(( (after - before) * 1000000 / hz / 20000 )) µs CPU a put; client: $(( client_ticks * 1000000 / hz / 20000 )) µs a put (JVM start included)"
