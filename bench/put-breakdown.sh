#!/usr/bin/env bash
# Where a serial put's time goes: a fresh cluster of <members> (1 or 3), serial puts to the leader
# (or, with "follower", to a follower) back to back (rate 0) or at <rate>/s, then the p50s of the
# members' own timers from /metrics (README, performance, "Where a put's time goes").
#
#   mvn -B -q package -DskipTests && bench/put-breakdown.sh <members> <rate> [leader|follower]
#   e.g. bench/put-breakdown.sh 3 0; bench/put-breakdown.sh 3 50; bench/put-breakdown.sh 1 0;
#        bench/put-breakdown.sh 3 0 follower
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: bench/put-breakdown.sh <members> <rate, 0 for back to back> [leader|follower]" >&2; exit 2; }
n=$1; rate=$2; to=${3:-leader}; base=27790
work="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT
start_members "" "$n"
lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
target=$lead
if [ "$to" = follower ]; then
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { target=$e; break; }; done
  [ "$target" != "$lead" ] || { echo "no follower in a cluster of $n" >&2; exit 2; }
fi
# The members' timers decay over minutes, so the warm-up is serial too, and shorter before a paced run.
if [ "$rate" = 0 ]; then
  bench put --endpoints "$target" --conns 1 --clients 1 --total 4000 --warmup 0 > /dev/null
  bench put --endpoints "$target" --conns 1 --clients 1 --total 3000 --warmup 100
else
  bench put --endpoints "$target" --conns 1 --clients 1 --total 1000 --warmup 0 > /dev/null
  bench put --endpoints "$target" --conns 1 --clients 1 --total 2000 --rate "$rate" --warmup 100
fi
p50() { curl -fsS "http://127.0.0.1:$1/metrics" | grep 'quantile="0.5"' | grep -E "$2" | sed -E 's/\{quantile="0.5"\}//'; }
echo "leader $lead:"
p50 $((${lead##*:} + 20)) '^kvstore_grpc_put|^raft_forward_handle|clientwriterequest|log_appender_m[0-9]+_latency\{|flushtime' | sed 's/^/  /'
for i in $(seq 0 $((n - 1))); do
  if [ "127.0.0.1:$((base + i))" != "$lead" ]; then
    echo "follower m$i$([ "127.0.0.1:$((base + i))" = "$target" ] && echo ", the client's"):"
    p50 $((base + 20 + i)) '^kvstore_grpc_put|^raft_forward_send|follower_append_entry_latency\{|flushtime' | sed 's/^/  /'
  fi
done
