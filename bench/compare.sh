#!/usr/bin/env bash
# Runs the same benchmark set against a 3-member Capstan kvstore and a 3-member etcd 3.4 on this
# machine, one system after the other (so they never compete for the CPUs), and prints both sets
# of figures side by side as a Markdown table.
#
#   mvn -B -q package -DskipTests && bench/compare.sh [--quick]
#
# COMPACT=<duration> (e.g. 5m, as kube-apiserver keeps it) starts both systems with
# --auto-compaction-mode periodic --auto-compaction-retention <duration>; default: no compaction
# (etcd's default), so each store holds every version the runs write.
#
# Needs: deploy/target/capstan (built), /usr/bin/etcd and etcdctl (apt-get install etcd-server).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
capstan="$root/deploy/target/capstan/bin/capstan"
etcd_bin="${ETCD:-/usr/bin/etcd}"
[ -x "$capstan" ] || { echo "build first: mvn -B -q package -DskipTests" >&2; exit 1; }
[ -x "$etcd_bin" ] || { echo "etcd not found: apt-get install -y etcd-server" >&2; exit 1; }

quick=0
[ "${1:-}" = "--quick" ] && quick=1
if [ $quick = 1 ]; then
  put_total=3000; serial_total=300; range_total=1000; watch_puts=20; fill_total=10000; warmup=--quick
else
  put_total=20000; serial_total=2000; range_total=5000; watch_puts=1000; fill_total=100000; warmup=
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# bench (the benchmark client, without the kvstore's CAPSTAN_JAVA_OPTS) and warm_up
# shellcheck source=bench/members.sh
. "$root/bench/members.sh"
history_flags=""
[ -n "${COMPACT:-}" ] && history_flags="--auto-compaction-mode periodic --auto-compaction-retention $COMPACT"
ETCD_FLAGS="${ETCD_FLAGS:-} $history_flags"

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "-"; }

# start_<system> <base port>: starts 3 members, fills pids[] and endpoints.
start_capstan() {
  local base=$1 initial="" i
  for i in 0 1 2; do initial+="${initial:+,}c$i=http://127.0.0.1:$((base + 10 + i))"; done
  for i in 0 1 2; do
    # shellcheck disable=SC2086 # history_flags: split on spaces
    "$capstan" kvstore --name "c$i" --data-dir "$work/c$i" $history_flags \
      --listen-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "$initial" > "$work/c$i.log" 2>&1 &
    pids[$i]=$!
  done
}

wait_up() {
  local eps=$1 deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    if [ -n "$(bench status --endpoints "$eps" --conns 1 --leader 2>/dev/null)" ] \
        && bench status --endpoints "$eps" --conns 1 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  echo "cluster at $eps did not come up" >&2; exit 1
}

declare -A R

# run_suite <label> <base port>
run_suite() {
  local label=$1 base=$2
  local eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
  echo "== $label: starting 3 members" >&2
  "start_$label" "$base"
  wait_up "$eps"
  echo "== $label: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  # The same unmeasured warm-up for both systems (members.sh)
  warm_up "$eps" $warmup

  local ticks0; ticks0=$(cpu_ticks)
  R[$label,put64]="$(bench put --endpoints "$eps" --clients 64 --total $put_total | tee -a /dev/stderr)"
  # the three members' CPU per put over that run (microseconds)
  R[$label,cpu64]=$(( ($(cpu_ticks) - ticks0) * 1000000 / $(getconf CLK_TCK) / put_total ))
  # Serial runs talk to one member; whether it leads changes the figure (a follower forwards the
  # write, and asks the leader for a read index), so both systems are measured through a follower.
  local lead follower e
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
  echo "== $label: leader $lead, serial runs through follower $follower" >&2
  R[$label,put1]="$(bench put --endpoints "$follower" --conns 1 --clients 1 --total $serial_total --warmup 100 | tee -a /dev/stderr)"
  R[$label,rangel]="$(bench range --endpoints "$follower" --conns 1 --clients 1 --total $range_total --consistency l | tee -a /dev/stderr)"
  # lease keep-alives: only the leader answers them (a follower asks it), as TimeToLive
  R[$label,ka1]="$(bench lease --endpoints "$follower" --conns 1 --clients 1 --total $range_total | tee -a /dev/stderr)"
  R[$label,ka64]="$(bench lease --endpoints "$follower" --conns 1 --clients 64 --total $((range_total * 4)) | tee -a /dev/stderr)"
  R[$label,range64]="$(bench range --endpoints "$eps" --clients 64 --total $((range_total * 4)) --consistency l | tee -a /dev/stderr)"
  R[$label,watch]="$(bench watch-latency --endpoints "$eps" --watchers 1000 --streams 10 --puts $watch_puts --rate 50 | tee -a /dev/stderr)"
  # The watch row's two parts: a put's own path at 50/s (commit, apply) and a delivery with
  # almost no fan-out (10 watchers on the member the puts go to).
  R[$label,put50]="$(bench put --endpoints "$lead" --conns 1 --clients 1 --total $((watch_puts / 2)) --warmup 50 --rate 50 | tee -a /dev/stderr)"
  R[$label,watch10]="$(bench watch-latency --endpoints "$lead" --watchers 10 --streams 1 --puts $watch_puts --rate 50 | tee -a /dev/stderr)"

  # failover: serial writes for 15 s; SIGKILL the leader after 5 s
  bench failover --endpoints "$eps" --duration 15 > "$work/failover-$label.txt" 2>&1 &
  local fpid=$!
  sleep 5
  local leader i
  leader="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for i in 0 1 2; do
    if [ "$leader" = "127.0.0.1:$((base + i))" ]; then kill -9 "${pids[$i]}"; echo "== $label: killed leader $leader" >&2; fi
  done
  wait "$fpid" || true
  R[$label,failover]="$(cat "$work/failover-$label.txt" | tail -1)"
  echo "${R[$label,failover]}" >&2

  for i in 0 1 2; do kill -9 "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
  pids=()

  # memory: a fresh cluster, idle, then after exactly $fill_total puts over $fill_total keys
  rm -rf "$work/${label:0:1}0" "$work/${label:0:1}1" "$work/${label:0:1}2"
  "start_$label" "$base"
  wait_up "$eps"
  sleep 5
  R[$label,rss_idle]="$(rss_mb "${pids[0]}") / $(rss_mb "${pids[1]}") / $(rss_mb "${pids[2]}")"
  R[$label,fill]="$(bench put --endpoints "$eps" --clients 64 --total $fill_total --key-space $fill_total --sequential-keys --val-size 256 --warmup 0 | tee -a /dev/stderr)"
  sleep 5
  R[$label,rss_full]="$(rss_mb "${pids[0]}") / $(rss_mb "${pids[1]}") / $(rss_mb "${pids[2]}")"
  for i in 0 1 2; do kill -9 "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
  pids=()
}

run_suite capstan 23790
run_suite etcd 24790

# Pick figures out of the result lines.
ops() { sed -E 's/.*: ([0-9]+) ops\/s.*/\1/' <<< "$1"; }
pct() { sed -E "s/.* $2=([0-9.]+ms).*/\\1/" <<< "$1"; }
lat() { echo "$(pct "$1" p50) / $(pct "$1" p99)"; }
gap() { sed -E 's/.*writes=([0-9.]+ms).*/\1/' <<< "$1"; }

cat <<TABLE

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(date -u +%Y-%m-%d); etcd $("$etcd_bin" --version | head -1 | awk '{print $3}')$( [ $quick = 1 ] && echo " (quick run)")$( [ -n "${COMPACT:-}" ] && echo "; both compacting their history periodically, keeping $COMPACT")

| metric | Capstan kvstore (3 members) | etcd 3.4 (3 members) |
|---|---|---|
| put, 64 in flight: ops/s | $(ops "${R[capstan,put64]}") | $(ops "${R[etcd,put64]}") |
| put, 64 in flight: CPU of the 3 members a put (µs) | ${R[capstan,cpu64]} | ${R[etcd,cpu64]} |
| put, 64 in flight: p50 / p99 | $(lat "${R[capstan,put64]}") | $(lat "${R[etcd,put64]}") |
| serial put through a follower: ops/s | $(ops "${R[capstan,put1]}") | $(ops "${R[etcd,put1]}") |
| serial put through a follower: p50 / p99 | $(lat "${R[capstan,put1]}") | $(lat "${R[etcd,put1]}") |
| serial linearizable get through a follower: ops/s | $(ops "${R[capstan,rangel]}") | $(ops "${R[etcd,rangel]}") |
| serial linearizable get through a follower: p50 / p99 | $(lat "${R[capstan,rangel]}") | $(lat "${R[etcd,rangel]}") |
| serial lease keep-alive through a follower: ops/s | $(ops "${R[capstan,ka1]}") | $(ops "${R[etcd,ka1]}") |
| serial lease keep-alive through a follower: p50 / p99 | $(lat "${R[capstan,ka1]}") | $(lat "${R[etcd,ka1]}") |
| lease keep-alives through a follower, 64 in flight on one stream: ops/s | $(ops "${R[capstan,ka64]}") | $(ops "${R[etcd,ka64]}") |
| linearizable get, 64 in flight: ops/s | $(ops "${R[capstan,range64]}") | $(ops "${R[etcd,range64]}") |
| watch delivery to 1000 watchers: p50 / p99 | $(lat "${R[capstan,watch]}") | $(lat "${R[etcd,watch]}") |
| put through the leader at 50/s, one at a time: p50 / p99 | $(lat "${R[capstan,put50]}") | $(lat "${R[etcd,put50]}") |
| watch delivery to 10 watchers on the leader, puts through it at 50/s: p50 / p99 | $(lat "${R[capstan,watch10]}") | $(lat "${R[etcd,watch10]}") |
| fill ${fill_total} keys x 256 B (fresh cluster, no warm-up), 64 in flight: ops/s | $(ops "${R[capstan,fill]}") | $(ops "${R[etcd,fill]}") |
| RSS per member, idle (MB) | ${R[capstan,rss_idle]} | ${R[etcd,rss_idle]} |
| RSS per member after ${fill_total} puts over ${fill_total} keys of 256 B (MB) | ${R[capstan,rss_full]} | ${R[etcd,rss_full]} |
| longest write gap, SIGKILL of the leader | $(gap "${R[capstan,failover]}") | $(gap "${R[etcd,failover]}") |
TABLE
