#!/usr/bin/env bash
# Failover, repeated: the longest gap between acknowledged serial writes when the Raft leader of a
# fresh 3-member cluster is SIGKILLed, over several rounds, for a Capstan kvstore (and, to compare,
# the same kvstore without its election watch, -Dcapstan.raft.election-watch=false) and a 3-member
# etcd 3.4, one system after the other. Prints each round's gap and min / median / max per system.
#
#   mvn -B -q package -DskipTests && bench/failover.sh [rounds, default 10] [systems, default "capstan nowatch etcd"]
#
# Needs: deploy/target/capstan (built), /usr/bin/etcd (apt-get install etcd-server).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
rounds=${1:-10}
systems=${2:-capstan nowatch etcd}
base=${BASE_PORT:-24300}

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/members.sh
. "$root/bench/members.sh"

eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
declare -A gaps
for system in $systems; do
  for round in $(seq 1 "$rounds"); do
    case $system in
      capstan) start_members "" ;;
      nowatch) start_members "-Dcapstan.raft.election-watch=false" ;;
      etcd)
        rm -rf "$work"/e*
        start_etcd "$base" ;;
      *) echo "unknown system $system" >&2; exit 1 ;;
    esac
    bench put --endpoints "$eps" --clients 8 --total 2000 --warmup 0 > /dev/null
    bench failover --endpoints "$eps" --duration 8 > "$work/failover.txt" 2>&1 &
    fpid=$!
    sleep 3
    leader="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
    for i in 0 1 2; do
      [ "$leader" = "127.0.0.1:$((base + i))" ] && kill -9 "${pids[$i]}"
    done
    wait "$fpid" || true
    gap="$(sed -nE 's/.*writes=([0-9.]+)ms.*/\1/p' "$work/failover.txt" | tail -1)"
    echo "$system round $round: longest write gap ${gap} ms (killed $leader)" >&2
    gaps[$system]+="$gap "
    stop_members
  done
done

for system in $systems; do
  # shellcheck disable=SC2086 # the gaps, one per round
  printf '%s\n' ${gaps[$system]} | sort -n | awk -v s="$system" '
    { v[NR] = $1; if ($1 > 2000) over++ }
    END { printf "%-8s %d rounds: min %.0f ms, median %.0f ms, max %.0f ms, %d over 2 s\n", s, NR, v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR], over }'
done
