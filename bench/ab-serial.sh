#!/usr/bin/env bash
# Serial puts under two sets of JVM options, in short alternating runs on two clusters that are
# up at the same time: bench/ab.sh runs each side for ~6 minutes, and this machine's speed drifts
# by 10-30% over minutes, so a change worth 5% of a serial put is lost in it. Here a fresh
# 3-member cluster of each side starts, both get the standard warm-up (members.sh: warm_up), then
# [rounds] rounds each run [puts] serial puts through a follower on A and on B, the order
# swapped every round (the idle cluster only heartbeats meanwhile). Prints each round, then per
# side the median of the rounds' rates and p50s and how many rounds each side won.
#
#   mvn -B -q package -DskipTests && bench/ab-serial.sh "<options A>" "<options B>" [rounds, default 20] [puts, default 1000]
#
# LOAD=leader puts through the leader instead. Options as in bench/ab.sh (a leading dist=<dir>
# runs that side from a copy of deploy/target/capstan).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: bench/ab-serial.sh \"<options A>\" \"<options B>\" [rounds] [puts]" >&2; exit 2; }
rounds=${3:-20}
puts=${4:-1000}

top="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$top"' EXIT

# side <name> <base> <options>: starts that side's cluster, warms it up, sets target_<name>
side() {
  base=$2 work="$top/$1"
  mkdir -p "$work"
  start_members "$3"
  warm_up "$eps"
  local lead e target=""
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  if [ "${LOAD:-}" = leader ]; then
    target=$lead
  else
    for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { target=$e; break; }; done
  fi
  printf -v "target_$1" %s "$target"
  echo "side $1 (${3:-no options}): members at $eps, serial puts through $target"
}

side A 26790 "$1"
side B 26890 "$2"

one() {
  local t
  t="target_$1"
  bench put --endpoints "${!t}" --conns 1 --clients 1 --total "$puts" --warmup 50 --warmup-limit 0 |
    sed -nE 's/.* ([0-9]+) ops\/s p50=([0-9.]+)ms .*p99=([0-9.]+)ms.*/\1 \2 \3/p'
}

: > "$top/results"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  line="round $r:"
  for s in $order; do
    read -r rate p50 p99 <<< "$(one "$s")"
    echo "$r $s $rate $p50 $p99" >> "$top/results"
    line+=" $s $rate/s p50 ${p50} p99 ${p99};"
  done
  echo "$line"
done

python3 - "$top/results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r, side, rate, p50, p99 = line.split()
    runs.setdefault(side, {})[int(r)] = (int(rate), float(p50), float(p99))
for side in ("A", "B"):
    v = list(runs[side].values())
    print("%s: median %.0f puts/s (mean %.1f), p50 %.2f ms, p99 %.2f ms" % (side,
          statistics.median(x[0] for x in v), statistics.mean(x[0] for x in v),
          statistics.median(x[1] for x in v), statistics.median(x[2] for x in v)))
wins = {s: sum(runs[s][r][0] > runs[o][r][0] for r in runs[s]) for s, o in (("A", "B"), ("B", "A"))}
print("rounds with the higher rate: A %d, B %d (of %d)" % (wins["A"], wins["B"], len(runs["A"])))
PY
