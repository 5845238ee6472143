# Sourced by every bench/*.sh that starts a cluster (ab, api-compare, compare, cpu, failover,
# put-breakdown, put-steps, snapshot-stall, thread-cpu): a fresh kvstore cluster from the built
# distribution (or an etcd cluster).
# Needs $capstan (bin/capstan), $base (first client port; peers at base+10.., /metrics at
# base+20..) and $work (a scratch directory); fills pids[] and eps.

# BENCH_JAVA_OPTS: JVM options for the benchmark client (not the members)
bench() { CAPSTAN_JAVA_OPTS="${BENCH_JAVA_OPTS:-}" CAPSTAN_HEAP=1g "$capstan" bench "$@"; }

# warm_up <endpoints> [--quick]: the unmeasured warm-up every script gives a cluster (Capstan's or
# etcd's) before it measures: each kind of request the runs make, in their shapes, until a
# kvstore member's JIT has compiled them (the client's own warm-up is left out here: each measured
# run warms its client itself, ClientWarmUp) (with C2, puts with 64 in flight reach their steady rate
# after ~60,000 requests; README, performance). etcd does not need it but gets it too.
warm_up() {
  local eps=$1 n=1 lead follower e
  [ "${2:-}" = --quick ] && n=0
  lead="$(bench status --endpoints "$eps" --conns 1 --leader | head -1)"
  for e in ${eps//,/ }; do [ "$e" != "$lead" ] && { follower=$e; break; }; done
  bench put --endpoints "$eps" --clients 64 --total $((1000 + n * 19000)) --warmup 0 > /dev/null
  bench put --endpoints "${follower:-$lead}" --conns 1 --clients 1 --total $((200 + n * 2800)) --warmup 0 > /dev/null
  bench put --endpoints "$lead" --conns 1 --clients 1 --total $((200 + n * 1800)) --warmup 0 > /dev/null
  bench range --endpoints "$eps" --clients 64 --total $((1000 + n * 19000)) --consistency l > /dev/null
  bench range --endpoints "${follower:-$lead}" --conns 1 --clients 1 --total $((200 + n * 1800)) --consistency l --warmup-limit 0 > /dev/null
  # the fan-out to 1,000 watchers keeps a member's JIT busy for ~12 such runs (README, goals)
  local w
  for w in $(seq 1 $((1 + n * 11))); do
    bench watch-latency --endpoints "$eps" --watchers 1000 --streams 10 --puts $((20 + n * 230)) --rate 50 --warmup 0 > /dev/null
  done
  # puts last: the other kinds of request make the JIT recompile some of their code
  bench put --endpoints "$eps" --clients 64 --total $((1000 + n * 39000)) --warmup 0 > /dev/null
}

# member_role <i>: what member m<i> is to the measuring scripts ($lead, $follower on $base + i)
member_role() {
  case "127.0.0.1:$((base + $1))" in
    "$lead") echo leader ;;
    "$follower") echo "the client's follower" ;;
    *) echo "other follower" ;;
  esac
}

# load <puts>: the load that thread-cpu.sh and alloc-profile.sh measure: serial puts through
# $follower, or with LOAD=put64 puts with 64 in flight over $eps. pre_load <runs> runs it unmeasured
# that many times first (3,000 serial puts or 20,000 puts with 64 in flight a run).
load() {
  if [ "${LOAD:-}" = put64 ]; then
    bench put --endpoints "$eps" --clients 64 --total "$1" --warmup 0
  else
    bench put --endpoints "$follower" --conns 1 --clients 1 --total "$1" --warmup 0
  fi
}
pre_load() {
  local r n=3000
  [ "${LOAD:-}" = put64 ] && n=20000
  for r in $(seq 1 "$1"); do load "$n" > /dev/null; done
}

# start_members "<JVM options>" [members, default 3]: starts them, returns once one of them leads.
# KVSTORE_FLAGS, if set, adds kvstore flags (e.g. KVSTORE_FLAGS="--snapshot-count 20000").
# Options may begin with dist=<dir> (run the members from that copy of deploy/target/capstan, to
# compare two builds: the benchmark client stays on this one) and then java=<path> (run them on
# that java binary), e.g. "dist=/tmp/capstan-old java=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java -Xlog:gc".
start_members() {
  local opts=$1 n=${2:-3} initial="" i java_bin=${JAVA:-java} member_bin=$capstan
  if [[ $opts == dist=* ]]; then
    member_bin=${opts%% *}; member_bin=${member_bin#dist=}/bin/capstan
    [[ $opts == *" "* ]] && opts=${opts#* } || opts=""
  fi
  if [[ $opts == java=* ]]; then
    java_bin=${opts%% *}; java_bin=${java_bin#java=}
    [[ $opts == *" "* ]] && opts=${opts#* } || opts=""
  fi
  rm -rf "$work"/m*
  eps=""
  for i in $(seq 0 $((n - 1))); do initial+="${initial:+,}m$i=http://127.0.0.1:$((base + 10 + i))"; done
  for i in $(seq 0 $((n - 1))); do
    # shellcheck disable=SC2086 # KVSTORE_FLAGS: extra kvstore flags, split on spaces
    JAVA="$java_bin" CAPSTAN_JAVA_OPTS="$opts" "$member_bin" kvstore --name "m$i" --data-dir "$work/m$i" ${KVSTORE_FLAGS:-} \
      --listen-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --listen-metrics-urls "http://127.0.0.1:$((base + 20 + i))" \
      --initial-cluster "$initial" > "$work/m$i.log" 2>&1 &
    pids+=($!)
    eps+="${eps:+,}127.0.0.1:$((base + i))"
  done
  wait_for_leader
}

# wait_for_leader: returns once one of $eps leads, or fails after 60 s
wait_for_leader() {
  local i
  for i in $(seq 1 120); do
    [ -n "$(bench status --endpoints "$eps" --conns 1 --leader 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  echo "no leader at $eps after 60 s" >&2
  return 1
}

# stop_members: SIGKILLs the members and reaps them
stop_members() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}

# cpu_ticks: CPU time (user + system, clock ticks) the members have used so far
cpu_ticks() { local s=0 p; for p in "${pids[@]}"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $s; }

# start_etcd <base port>: starts a 3-member etcd (${ETCD:-/usr/bin/etcd}, with ${ETCD_FLAGS}) with client ports base..base+2
# and peer ports base+10..base+12, data in $work/e<i>; fills pids[] and eps, returns once one leads
start_etcd() {
  local base=$1 initial="" i
  for i in 0 1 2; do initial+="${initial:+,}e$i=http://127.0.0.1:$((base + 10 + i))"; done
  for i in 0 1 2; do
    # shellcheck disable=SC2086 # ETCD_FLAGS: extra etcd flags, split on spaces
    "${ETCD:-/usr/bin/etcd}" --name "e$i" --data-dir "$work/e$i" \
      --listen-client-urls "http://127.0.0.1:$((base + i))" --advertise-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "$initial" --initial-cluster-state new --logger zap --log-outputs stderr ${ETCD_FLAGS:-} \
      > "$work/e$i.log" 2>&1 &
    pids[$i]=$!
  done
  eps="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
  wait_for_leader
}
