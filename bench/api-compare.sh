#!/usr/bin/env bash
# The api-server benchmark: object creates with 64 concurrent clients and watch delivery to 1000
# watchers, with a 3-member Capstan kvstore as the store and then a 3-member etcd 3.4, one after
# the other on this machine. Prints a Markdown table.
#
#   mvn -B -q package -DskipTests && bench/api-compare.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
etcd_bin="${ETCD:-/usr/bin/etcd}"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# bench (the benchmark client) and warm_up
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"

start_store() {
  local kind=$1 base=$2 initial="" i
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:$((base + 10 + i))"; done
  for i in 0 1 2; do
    if [ "$kind" = capstan ]; then
      "$capstan" kvstore --name "m$i" --data-dir "$work/$kind$i" --listen-client-urls "http://127.0.0.1:$((base + i))" \
        --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" --initial-cluster "$initial" > "$work/$kind$i.log" 2>&1 &
    else
      "$etcd_bin" --name "m$i" --data-dir "$work/$kind$i" --listen-client-urls "http://127.0.0.1:$((base + i))" \
        --advertise-client-urls "http://127.0.0.1:$((base + i))" --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" --initial-cluster "$initial" \
        --initial-cluster-state new > "$work/$kind$i.log" 2>&1 &
    fi
    pids+=($!)
  done
}

declare -A R
run() {
  local kind=$1 base=$2
  local eps="http://127.0.0.1:$base,http://127.0.0.1:$((base + 1)),http://127.0.0.1:$((base + 2))"
  start_store "$kind" "$base"
  local deadline=$((SECONDS + 60))
  until [ -n "$(bench status --endpoints "${eps//http:\/\//}" --conns 1 --leader 2>/dev/null)" ] || [ $SECONDS -gt $deadline ]; do sleep 0.5; done
  # the store's own warm-up first (members.sh; the same for both stores): a kvstore member's C2
  # compiler would otherwise still be busy during the api-server's measured runs
  warm_up "${eps//http:\/\//}"
  "$capstan" api-server --kvstore-endpoints "$eps" --grpc-port $((base + 50)) --http-port $((base + 51)) > "$work/api-$kind.log" 2>&1 &
  pids+=($!)
  deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$((base + 51))/readyz" 2>/dev/null || [ $SECONDS -gt $deadline ]; do sleep 0.5; done
  echo "== $kind: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  R[$kind,create]="$(bench api-create --endpoints 127.0.0.1:$((base + 50)) --clients 64 --total 5000 | tee -a /dev/stderr)"
  # one discarded pass at the fixed rate first: the first seconds after a start measure the JIT
  bench api-create --endpoints 127.0.0.1:$((base + 50)) --clients 64 --rate 500 --total 2500 > /dev/null
  R[$kind,create500]="$(bench api-create --endpoints 127.0.0.1:$((base + 50)) --clients 64 --rate 500 --total 5000 | tee -a /dev/stderr)"
  R[$kind,watch]="$(bench api-watch --endpoints 127.0.0.1:$((base + 50)) --watchers 1000 --updates 50 --rate 10 | tee -a /dev/stderr)"
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

run capstan 25790
run etcd 26790

ops() { sed -E 's/.*: ([0-9]+) ops\/s.*/\1/' <<< "$1"; }
pct() { sed -E "s/.* $2=([0-9.]+ms).*/\\1/" <<< "$1"; }
cat <<TABLE

| api-server metric | over Capstan kvstore (3 members) | over etcd 3.4 (3 members) |
|---|---|---|
| creates/s, 64 concurrent clients | $(ops "${R[capstan,create]}") | $(ops "${R[etcd,create]}") |
| create p50 / p99 | $(pct "${R[capstan,create]}" p50) / $(pct "${R[capstan,create]}" p99) | $(pct "${R[etcd,create]}" p50) / $(pct "${R[etcd,create]}" p99) |
| creates at a fixed 500/s (open loop, 64 in flight at most): achieved/s | $(ops "${R[capstan,create500]}") | $(ops "${R[etcd,create500]}") |
| create p50 / p99 at 500/s (from the scheduled start) | $(pct "${R[capstan,create500]}" p50) / $(pct "${R[capstan,create500]}" p99) | $(pct "${R[etcd,create500]}" p50) / $(pct "${R[etcd,create500]}" p99) |
| watch delivery to 1000 watchers p50 / p99 | $(pct "${R[capstan,watch]}" p50) / $(pct "${R[capstan,watch]}" p99) | $(pct "${R[etcd,watch]}" p50) / $(pct "${R[etcd,watch]}" p99) |
TABLE
