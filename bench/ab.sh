#!/usr/bin/env bash
# A/B runs of the kvstore under two sets of JVM options, interleaved (A, B, A, B, ...): on a
# shared machine the figures drift by 10-30% over minutes, so one run of each says little.
# Each run starts a fresh 3-member cluster, warms it up as compare.sh does (members.sh: warm_up),
# then prints puts with 64 in flight (twice), serial puts through a follower and the leader, and
# linearizable gets with 64 in flight and serially through a follower and the leader, and lease
# keep-alives serially through a follower and the leader and 64 in flight through a follower,
# and watch delivery to 10 watchers on the leader with puts through it at 50/s
# (e.g. bench/ab.sh "" "-Dcapstan.read.log-barrier=true" 2 for the read path).
#
#   mvn -B -q package -DskipTests && bench/ab.sh "<options A>" "<options B>" [rounds]
#   e.g. bench/ab.sh "" "-Draft.server.log.log-metadata.enabled=true" 2
#
# Options go to CAPSTAN_JAVA_OPTS (JVM flags, -Dcapstan.* and -Draft.* settings); a leading
# dist=<dir> runs that side's members from a copy of deploy/target/capstan, to compare two builds
# (e.g. cp -r deploy/target/capstan /tmp/old, rebuild, bench/ab.sh "dist=/tmp/old" "" 2).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: bench/ab.sh \"<options A>\" \"<options B>\" [rounds]" >&2; exit 2; }

base=25790
work="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT

run() {
  local opts=$1 lead follower e
  start_members "$opts"
  warm_up "$eps"
  bench put --endpoints "$eps" --clients 64 --total 20000
  bench put --endpoints "$eps" --clients 64 --total 20000
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
  echo -n "through a follower: "
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 2000 --warmup 100
  echo -n "through the leader: "
  bench put --endpoints "$lead" --conns 1 --clients 1 --total 2000 --warmup 100
  bench range --endpoints "$eps" --clients 64 --total 20000 --consistency l
  echo -n "linearizable gets through a follower: "
  bench range --endpoints "$follower" --conns 1 --clients 1 --total 3000 --consistency l
  echo -n "linearizable gets through the leader: "
  bench range --endpoints "$lead" --conns 1 --clients 1 --total 3000 --consistency l
  echo -n "lease keep-alives through a follower: "
  bench lease --endpoints "$follower" --conns 1 --clients 1 --total 3000
  echo -n "lease keep-alives through the leader: "
  bench lease --endpoints "$lead" --conns 1 --clients 1 --total 3000
  echo -n "lease keep-alives through a follower, 64 in flight: "
  bench lease --endpoints "$follower" --conns 1 --clients 64 --total 20000
  echo -n "watch delivery to 10 watchers on the leader, puts through it at 50/s: "
  bench watch-latency --endpoints "$lead" --watchers 10 --streams 1 --puts 500 --rate 50
  stop_members
}

for r in $(seq 1 "${3:-2}"); do
  echo "== round $r, A: ${1:-(none)}"; run "$1"
  echo "== round $r, B: ${2:-(none)}"; run "$2"
done
