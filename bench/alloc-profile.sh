#!/usr/bin/env bash
# Where a member's heap allocation comes from: a fresh 3-member kvstore whose JVMs record sampled
# allocations (JFR, bench/alloc.jfc, started with the JVM), the benchmarks' warm-up, [pre]
# unmeasured runs of the load, then the measured run; prints each member's allocated bytes a put,
# by thread, and the allocation sites that account for most of it (bench/AllocProfile.java).
# Allocation drives G1's young collections (a member's young generation is a few MB beside the
# old data), and with it their CPU and the pauses in the tail of a put's latency.
#
#   mvn -B -q package -DskipTests && bench/alloc-profile.sh ["<JVM options>"] [puts, default 4000] [pre, default 2]
#
# LOAD=put64 measures puts with 64 in flight over the three members (default: serial puts through
# a follower). OUT=<dir> keeps the recordings there (default: a temporary directory, removed), to
# read again with the java command the script prints.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
opts="${1:-}"
puts="${2:-4000}"
pre="${3:-2}"

base=28790
work="$(mktemp -d)"
out="${OUT:-$work/out}"
mkdir -p "$out"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT

start_members "-XX:StartFlightRecording=name=alloc,settings=$root/bench/alloc.jfc -XX:FlightRecorderOptions=stackdepth=48 $opts"
lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
roles=""
for i in 0 1 2; do
  roles+="m$i=$(member_role $i);"
done
warm_up "$eps"
pre_load "$pre"
t0="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
sleep 1.1   # ThreadAllocationStatistics is sampled once a second: one sample before the run
load "$puts"
sleep 1.1   # and one after it
t1="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
i=0
for p in "${pids[@]}"; do
  jcmd "$p" JFR.dump name=alloc filename="$out/m$i.jfr" > /dev/null
  i=$((i + 1))
done
echo "java $root/bench/AllocProfile.java $t0 $t1 $puts \"$roles\" $out/m*.jfr"
java "$root/bench/AllocProfile.java" "$t0" "$t1" "$puts" "$roles" "$out"/m*.jfr
