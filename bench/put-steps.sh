#!/usr/bin/env bash
# Where a serial put through a follower spends its time between the members, for Capstan and for
# etcd 3.4 side by side: a fresh 3-member cluster of each (one after the other), the same warm-up,
# then a tcpdump of the loopback traffic during serial puts through a follower, split into steps
# by bench/put-steps.py (README, performance, "A put through a follower, step by step").
#
#   mvn -B -q package -DskipTests && bench/put-steps.sh [capstan|etcd|both] [JVM options for Capstan]
#
# KEEP=<dir> keeps the tcpdump output there (<dir>/capstan.txt, <dir>/etcd.txt).
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
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap '[ -n "$dump" ] && kill "$dump" 2>/dev/null; stop_members; rm -rf "$work"' EXIT

steps() {
  local system=$1 lead follower other e
  if [ "$system" = capstan ]; then
    start_members "$opts"
  else
    start_etcd "$base"
    eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
    for _ in $(seq 1 120); do
      [ -n "$(bench status --endpoints "$eps" --conns 1 --leader 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { [ -z "${follower:-}" ] && follower=$e || other=$e; }; done
  # warm-up: puts with 64 in flight, then serial puts through the follower (JIT of both paths)
  bench put --endpoints "$eps" --clients 64 --total 40000 --warmup 0 > /dev/null
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 8000 --warmup 0 > /dev/null
  tcpdump -i lo -n -tt -q "tcp portrange $base-$((base + 12)) and tcp[tcpflags] & tcp-push != 0" \
    > "$work/$system.txt" 2> /dev/null &
  dump=$!
  sleep 1
  local ticks0 ticks1
  ticks0=$(cpu_ticks)
  echo -n "$system, client: "
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 3000 --warmup 100
  ticks1=$(cpu_ticks)
  echo "$system, CPU of the 3 members a put: $(( (ticks1 - ticks0) * 1000000 / $(getconf CLK_TCK) / 3100 )) µs"
  sleep 1
  kill "$dump"; wait "$dump" 2>/dev/null || true; dump=""
  python3 "$root/bench/put-steps.py" "$system" "$work/$system.txt" "${follower##*:}" "${lead##*:}" "${other##*:}"
  if [ -n "${KEEP:-}" ]; then cp "$work/$system.txt" "$KEEP/"; fi
  stop_members
  rm -rf "$work"/m* "$work"/e*
}

[ "$which" = etcd ] || steps capstan
[ "$which" = capstan ] || steps etcd
