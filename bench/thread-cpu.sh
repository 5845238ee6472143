#!/usr/bin/env bash
# CPU a serial put costs each thread of each member: a fresh 3-member kvstore with the given JVM
# options, the benchmarks' warm-up, [pre] unmeasured runs of 3,000 serial puts through a follower
# (the JIT is still compiling those paths after the warm-up), then [puts] serial puts through the
# same follower while every member thread's user + system time is read from /proc/<pid>/task
# before and after; prints µs a put per member and per thread (full names from jcmd Thread.print),
# and how often a put each thread went to sleep and was woken (its voluntary context switches
# from /proc/<pid>/task/<tid>/status: a hand-off to it, or a wait of its own), and how long a put
# it was ready to run but waited for a CPU (the run-queue wait of /proc/<pid>/task/<tid>/schedstat).
#
#   mvn -B -q package -DskipTests && bench/thread-cpu.sh ["<JVM options>"] [puts, default 4000] [pre, default 4]
#
# SYSTEM=etcd measures a 3-member etcd (etcd-server, or $ETCD) the same way instead, per member (its threads are
# all named "etcd"). LOAD=put64 measures puts with 64 in flight over all three members instead (the compare.sh row;
# [pre] unmeasured runs of 20,000 of them first, then [puts] measured, e.g. 30000).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
opts="${1:-}"
puts="${2:-4000}"
pre="${3:-4}"

base=27790
work="$(mktemp -d)"
pids=()
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
trap 'stop_members; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

# snap <file>: "member tid ticks voluntary-switches run-queue-ns" for every thread of every member
snap() {
  local i=0 p t
  : > "$1"
  for p in "${pids[@]}"; do
    for t in /proc/"$p"/task/*; do
      echo "m$i ${t##*/} $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)" \
        "$(awk '$1 == "voluntary_ctxt_switches:" {print $2}' "$t/status" 2>/dev/null || echo 0)" \
        "$(awk '{print $2}' "$t/schedstat" 2>/dev/null || echo 0)" >> "$1"
    done
    i=$((i + 1))
  done
}

if [ "${SYSTEM:-}" = etcd ]; then
  start_etcd "$base"
else
  start_members "$opts"
fi
lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
for i in 0 1 2; do
  echo "m$i: $(member_role $i)"
done
warm_up "$eps"
pre_load "$pre"
snap "$work/before"
load "$puts"
snap "$work/after"
# thread names: nid (hex) -> name, from each member's thread dump (etcd's threads are all "etcd")
i=0
for p in "${pids[@]}"; do
  if [ "${SYSTEM:-}" = etcd ]; then
    for t in /proc/"$p"/task/*; do echo "m$i ${t##*/} etcd"; done
  else
    jcmd "$p" Thread.print 2>/dev/null | sed -nE 's/^"([^"]*)".* nid=0x([0-9a-f]+).*/\2 \1/p' |
      while read -r nid name; do echo "m$i $((16#$nid)) ${name// /_}"; done
  fi
  i=$((i + 1))
done > "$work/names"
awk -v hz="$hz" -v n="$puts" '
  FILENAME == ARGV[1] { name[$1 " " $2] = $3; next }
  FILENAME == ARGV[2] { before[$1 " " $2] = $3; vbefore[$1 " " $2] = $4; qbefore[$1 " " $2] = $5; next }
  { d = $3 - before[$1 " " $2]; v = $4 - vbefore[$1 " " $2]; q = $5 - qbefore[$1 " " $2]
    if (d <= 0 && v <= 0) next
    t = name[$1 " " $2]; if (t == "") t = "(exited or unnamed)"
    us[$1 " " t] += d * 1e6 / hz / n; total[$1] += d * 1e6 / hz / n
    sw[$1 " " t] += v / n; swtotal[$1] += v / n
    rq[$1 " " t] += q / 1000 / n; rqtotal[$1] += q / 1000 / n }
  END { for (m in total) printf "%s total %.0f µs, %.1f wake-ups, %.0f µs waiting for a CPU a put\n", m, total[m], swtotal[m], rqtotal[m]
        for (k in us) printf "%s %.0f µs %.2f wake-ups %.0f µs waiting\n", k, us[k], sw[k], rq[k] }' "$work/names" "$work/before" "$work/after" |
  sort -k1,1 -k3,3nr
