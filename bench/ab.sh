#!/usr/bin/env bash
# A/B runs of the kvstore under two sets of JVM options, interleaved (A, B, A, B, ...): on a
# shared machine the figures drift by 10-30% over minutes, so one run of each says little.
# Each run starts a fresh 3-member cluster, warms it up with 20,000 puts (as compare.sh does),
# then prints puts with 64 in flight (twice) and serial puts through a follower and the leader.
#
#   mvn -B -q package -DskipTests && bench/ab.sh "<options A>" "<options B>" [rounds]
#   e.g. bench/ab.sh "" "-Draft.server.log.log-metadata.enabled=true" 2
#
# Options go to CAPSTAN_JAVA_OPTS (JVM flags, -Dcapstan.* and -Draft.* settings).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: bench/ab.sh \"<options A>\" \"<options B>\" [rounds]" >&2; exit 2; }

base=25790
work="$(mktemp -d)"
pids=()
stop() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$work"' EXIT

bench() { CAPSTAN_JAVA_OPTS= CAPSTAN_HEAP=1g "$capstan" bench "$@"; }

run() {
  local opts=$1 initial="" i eps lead follower e
  rm -rf "$work"/m*
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:$((base + 10 + i))"; done
  for i in 0 1 2; do
    CAPSTAN_JAVA_OPTS="$opts" "$capstan" kvstore --name "m$i" --data-dir "$work/m$i" \
      --listen-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "$initial" > "$work/m$i.log" 2>&1 &
    pids+=($!)
  done
  eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
  for i in $(seq 1 120); do
    [ -n "$(bench status --endpoints "$eps" --conns 1 --leader 2>/dev/null)" ] && break
    sleep 0.5
  done
  bench put --endpoints "$eps" --clients 64 --total 20000 --warmup 0 > /dev/null
  bench put --endpoints "$eps" --clients 64 --total 20000
  bench put --endpoints "$eps" --clients 64 --total 20000
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
  echo -n "through a follower: "
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 2000 --warmup 100
  echo -n "through the leader: "
  bench put --endpoints "$lead" --conns 1 --clients 1 --total 2000 --warmup 100
  stop
}

for r in $(seq 1 "${3:-2}"); do
  echo "== round $r, A: ${1:-(none)}"; run "$1"
  echo "== round $r, B: ${2:-(none)}"; run "$2"
done
