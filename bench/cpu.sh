#!/usr/bin/env bash
# CPU per put: starts a fresh 3-member kvstore with the given JVM options, warms it up with 20,000
# puts, then runs 20,000 puts with 64 in flight and prints the put rate and the CPU time (user and
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
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

bench() { CAPSTAN_JAVA_OPTS= CAPSTAN_HEAP=1g "$capstan" bench "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
hz=$(getconf CLK_TCK)

initial=""
for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:$((base + 10 + i))"; done
for i in 0 1 2; do
  CAPSTAN_JAVA_OPTS="$opts" "$capstan" kvstore --name "m$i" --data-dir "$work/m$i" \
    --listen-client-urls "http://127.0.0.1:$((base + i))" \
    --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
    --initial-cluster "$initial" > "$work/m$i.log" 2>&1 &
  pids+=($!)
done
eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
for _ in $(seq 1 120); do
  [ -n "$(bench status --endpoints "$eps" --conns 1 --leader 2>/dev/null)" ] && break
  sleep 0.5
done
bench put --endpoints "$eps" --clients 64 --total 20000 --warmup 0 > /dev/null
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
