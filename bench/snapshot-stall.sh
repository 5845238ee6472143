#!/usr/bin/env bash
# How long a Raft snapshot holds up writes: a fresh 3-member cluster with --snapshot-count 20000,
# 100,000 keys of 256 B written with 64 in flight, compacted, then 25,000 serial puts (one log entry each),
# during which every member reaches index 20,000 and snapshots the store. Prints the serial
# puts' latency (its max is the stall), each member's timers (Ratis' take-snapshot = our capture on
# the apply thread, then the background write) and their snapshot log lines (README,
# performance, "A snapshot no longer stops writes").
#
#   mvn -B -q package -DskipTests && bench/snapshot-stall.sh ["<member JVM options>", e.g. "-Xlog:gc:stdout:utctime"]
# SNAPSHOT_COUNT=1000000 gives the same run without a snapshot (the maximum without one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
base=29790
work="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT

KVSTORE_FLAGS="--snapshot-count ${SNAPSHOT_COUNT:-20000}" start_members "${1:-}"
bench put --endpoints "$eps" --clients 64 --total 100000 --key-space 100000 --sequential-keys --val-size 256 --warmup 0
# compacted, as the api-server compacts every 5 minutes: the snapshot then holds every key as a
# base value (without compaction the store's history since revision 1 holds them as events)
rev=$(etcdctl --endpoints "$eps" put stall/compact x -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
etcdctl --endpoints "$eps" compact "$rev"
bench put --endpoints "$eps" --conns 1 --clients 1 --total 25000 --key-space 100000 --warmup 0
for i in 0 1 2; do
  echo "m$i: $(curl -fsS "http://127.0.0.1:$((base + 20 + i))/metrics" \
    | grep -E '^(ratis_state_machine_takesnapshot|kvstore_snapshot_capture|kvstore_snapshot_write)(_count|\{quantile="0.5"\})' | tr '\n' ' ')"
done
for i in 0 1 2; do
  grep -h -E "captured the state|wrote snapshot" "$work/m$i.log"
  # with a GC log on stdout (the option above): the pauses from the capture to the written file
  from=$(grep -h -m1 -oE "^[0-9T:.-]+" <(grep "captured the state" "$work/m$i.log") || true)
  to=$(grep -h -m1 -oE "^[0-9T:.-]+" <(grep "wrote snapshot" "$work/m$i.log") || true)
  [ -n "$from" ] && [ -n "$to" ] && grep -E "^\[[0-9T:.-]+" "$work/m$i.log" \
    | awk -v a="[${from:0:19}" -v b="[${to:0:19}.999" '$1 >= a && $1 <= b' | grep -E "Pause" || true
done
