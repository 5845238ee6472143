#!/usr/bin/env bash
# Where a serial put's CPU goes by thread and by symbol, kernel included: a fresh 3-member kvstore
# with the given JVM options, the benchmarks' warm-up and three unmeasured runs of 3,000 serial puts
# through a follower, then `perf record` (cpu-clock, no call graphs) of the three members for
# [seconds] while serial puts run through the same follower. JIT-compiled frames are named from each
# member's `jcmd Compiler.perfmap`. Prints each thread's share of the samples (named from the
# members' thread dumps) and the top symbols; keeps perf.data and the thread names in [out dir]
# for `perf report -i <dir>/perf.data --tid <tid> --sort sym`.
#
#   mvn -B -q package -DskipTests && bench/thread-perf.sh ["<JVM options>"] [seconds, default 10] [out dir]
#
# Needs perf (linux-perf) and root or kernel.perf_event_paranoid <= 1. Kernel time in a VM shows
# largely as pvm_irq_enable / native_safe_halt-like symbols: syscalls, wake-ups, thread switches.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
command -v perf >/dev/null || { echo "needs perf" >&2; exit 1; }
opts="${1:-}"
seconds="${2:-10}"
out="${3:-$(mktemp -d)}"
mkdir -p "$out"

base=28790
work="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT

start_members "$opts"
warm_up "$eps"
lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
for r in 1 2 3; do
  bench put --endpoints "$follower" --conns 1 --clients 1 --total 3000 --warmup 0 > /dev/null
done
# enough puts to outlast the recording at ~400/s
bench put --endpoints "$follower" --conns 1 --clients 1 --total $((seconds * 400 + 2000)) --warmup 0 > "$work/put.out" &
bp=$!
sleep 2
perf record -F 999 -o "$out/perf.data" -p "$(IFS=,; echo "${pids[*]}")" -- sleep "$seconds" > /dev/null 2>&1
kill "$bp" 2>/dev/null || true
wait "$bp" 2>/dev/null || true
i=0
for p in "${pids[@]}"; do
  echo "m$i: $(member_role $i)" >&2
  jcmd "$p" Compiler.perfmap > /dev/null 2>&1 || true
  jcmd "$p" Thread.print 2>/dev/null | sed -nE 's/^"([^"]*)".* nid=0x([0-9a-f]+).*/\2 \1/p' |
    while read -r nid name; do echo "$((16#$nid)) m$i:${name// /_}"; done
  i=$((i + 1))
done > "$out/threads"
echo "== share of samples by thread"
perf report -i "$out/perf.data" --no-children --sort pid --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -30 |
  awk 'NR == FNR { name[$1] = $2; next } { split($2, t, ":"); print $1, (t[1] in name ? name[t[1]] : $2) }' "$out/threads" -
echo "== top symbols (all three members)"
perf report -i "$out/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
echo "(perf.data and thread names kept in $out)"
