#!/usr/bin/env python3
"""Splits serial puts through a follower into their steps between the members, from a tcpdump of
the loopback traffic (bench/put-steps.sh writes it): the time of each step is taken between the
packets that start and end it, so it is measured the same way for Capstan and for etcd, outside
both.

  put-steps.py <capstan|etcd> <tcpdump -tt -q output> <follower client port> <leader client port>
               <the other follower's client port> [GC log, ...]

With the members' GC logs (-Xlog:gc,safepoint:file=<f>:time, e.g. bench/put-steps.sh with GC=1)
it also counts how many of the slowest puts overlap a collection's pause (or another safepoint
over 1 ms) of any member.

Peer ports are client port + 10 (bench/members.sh). Packets are told apart by direction and size:
a put of 256 bytes is a request of ~300 bytes, the members' acknowledgements and replies are under
100 bytes.

Capstan: the follower forwards the put to the leader's client port (capstan.kvstore.Forward), the
leader's Ratis sends AppendEntries to each follower's peer port, the leader answers the forward
once it has applied the entry, the follower answers its client.
etcd: the follower sends MsgProp on its peer stream to the leader, the leader sends MsgApp on its
streams, the followers answer MsgAppResp, the leader sends the commit index in a small MsgApp, the
follower applies and answers its client.
"""
import argparse
import bisect
import datetime
import re
import sys

STEPS = [
    ("follower: request in .. proposal out", "c", "prop"),
    ("leader: proposal in .. first entry out", "prop", "entry"),
    ("a follower: entry in .. first ack out (fsync)", "entry", "ack"),
    ("leader: first ack in .. commit news out", "ack", "news"),
    ("follower: commit news in .. reply out", "news", "done"),
    ("total, in the members", "c", "done"),
]


def packets(path):
    for line in open(path):
        p = line.split()
        if len(p) < 6 or p[1] != "IP":
            continue
        yield float(p[0]), p[2].rsplit(".", 1)[1], p[4].rstrip(":").rsplit(".", 1)[1], int(p[-1])


def puts(system, path, follower, leader, other):
    fpeer, lpeer, opeer = (str(int(x) + 10) for x in (follower, leader, other))
    out, cur = [], None
    for t, src, dst, size in packets(path):
        if dst == follower and size > 200:
            cur = {"c": t}
            continue
        if cur is None:
            continue
        if system == "capstan":
            prop = dst == leader and size > 200
            entry = dst in (fpeer, opeer) and size > 400
            ack = src in (fpeer, opeer) and size < 100
            news = src == leader and size < 100
        else:
            prop = src == fpeer and size > 300
            entry = src == lpeer and size > 300
            ack = src in (fpeer, opeer) and 40 < size < 100
            news = src == lpeer and size < 100
        if "prop" not in cur:
            if prop:
                cur["prop"] = t
        elif "entry" not in cur:
            if entry:
                cur["entry"] = t
        elif "ack" not in cur:
            if ack:
                cur["ack"] = t
        elif "news" not in cur:
            if news:
                cur["news"] = t
        elif src == follower and 50 <= size < 200:
            cur["done"] = t
            out.append(cur)
            cur = None
    return out


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def pauses(paths):
    """(start, end) in epoch seconds of each pause in the GC logs: G1's pauses, other safepoints over 1 ms."""
    out = []
    for path in paths:
        for line in open(path):
            m = re.match(r"\[(\S+)\] (?:GC\(\d+\) Pause .* ([0-9.]+)ms|Safepoint \"(?!G1)[^\"]+\".* Total: (\d+) ns)$", line.strip())
            if not m:
                continue
            end = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            ms = float(m.group(2)) if m.group(2) else int(m.group(3)) / 1e6
            if m.group(2) or ms > 1:
                out.append((end - ms / 1000, end))
    return out


def by_time(found, share):
    """The slowest [share] of the puts (by their time inside the members), and the middle 20%."""
    ranked = sorted(found, key=lambda p: p["done"] - p["c"])
    n = len(ranked)
    return ranked[n - max(1, int(n * share)):], ranked[int(n * .4):int(n * .6)] or ranked


def overlap(found, stops):
    """How many of the slowest puts overlap a pause of any member."""
    t0, t1 = found[0]["c"], found[-1]["done"]
    stops = [s for s in stops if t0 <= s[1] <= t1]
    print("  GC pauses and safepoints of the members during the puts: %d, %.1f ms in all over %.1f s"
          % (len(stops), sum(b - a for a, b in stops) * 1000, t1 - t0))
    slow, middle = by_time(found, .02)
    for label, group in (("the slowest 2%", slow), ("the slowest 1%", by_time(found, .01)[0]),
                         ("the middle 20%", middle)):
        hit = sum(1 for p in group if any(a < p["done"] and b > p["c"] for a, b in stops))
        print("  %s: %d of %d overlap a pause" % (label, hit, len(group)))


SWITCH = re.compile(r"\s*(\d+)/(\d+)\s+\[(\d+)\]\s+([0-9.]+): sched:sched_switch: prev_comm=(.*?) prev_pid=(\d+) "
                    r"prev_prio=\S+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+) ")
WAKEUP = re.compile(r"\s*(\d+)/(\d+)\s+\[(\d+)\]\s+([0-9.]+): sched:sched_wakeup: comm=(.*?) pid=(\d+) ")


def schedule(path, offset):
    """Each CPU's runs [(start, end, tid)] (tid 0: idle), the threads' run-queue waits [(start, end,
    tid)] (from a wake-up or a preemption to the next time on a CPU), tid -> name, tid -> process."""
    runs, waits, names, tgids = {}, [], {}, {}
    on, ready = {}, {}
    for line in open(path):
        m = SWITCH.match(line)
        if m:
            pid, tid, cpu, t = m.group(1), m.group(2), m.group(3), float(m.group(4)) + offset
            prev, state, nxt = m.group(6), m.group(7), m.group(9)
            tgids[tid] = pid
            names[prev], names[nxt] = m.group(5), m.group(8)
            if cpu in on:
                runs.setdefault(cpu, []).append((on[cpu][1], t, prev))
            ready.pop(prev, None)
            if prev != "0" and state.startswith("R"):
                ready[prev] = t
            if nxt in ready:
                waits.append((ready.pop(nxt), t, nxt))
            on[cpu] = (nxt, t)
            continue
        m = WAKEUP.match(line)
        if m:
            tgids[m.group(2)] = m.group(1)
            tid = m.group(6)
            names[tid] = m.group(5)
            if all(tid != running for running, _ in on.values()):
                ready.setdefault(tid, float(m.group(4)) + offset)
    return runs, sorted(waits), names, tgids


def spent(intervals, i, a, b, into, key):
    """Adds the overlap with [a, b] of each interval from the i-th on to into[key(tid)]."""
    while i < len(intervals) and intervals[i][0] < b:
        s, e, tid = intervals[i]
        if e > a:
            k = key(tid)
            into[k] = into.get(k, 0) + min(e, b) - max(s, a)
        i += 1


def stalls(found, path, offset, members, threads):
    """What the CPUs ran, and which threads waited for one, during the longest step of each of the
    slowest 2% of the puts, against the same for the middle 20% (perf sched events)."""
    runs, waits, names, tgids = schedule(path, offset)
    if threads:  # full names, without the Raft group's id and the numbers that tell pool threads apart
        for line in open(threads):
            tid, name = line.rstrip("\n").split(" ", 1)
            names[tid] = re.sub(r"@group-[0-9A-F]+", "@group", name)
    cpus = len(runs)

    def who(tid, thread=True):
        if tid == "0":
            return "idle"
        pid = tgids.get(tid)
        name = re.sub(r"-{2,}", "-", re.sub(r"(?<=[-#])\d+|\d+$", "", names.get(tid, "?"))).strip("-#") if thread else ""
        if pid in members:
            return members[pid] + (": " + name if thread else "")
        return "not a member (%s)" % names.get(pid, "?") + (": " + name if thread else "")

    def windows(group):
        out = []
        for p in group:
            _, start, end = max(STEPS[:-1], key=lambda s: p[s[2]] - p[s[1]])
            out.append((p[start], p[end]))
        return out

    def tally(group, thread):
        ws = windows(group)
        ran, waited = {}, {}
        for a, b in ws:
            for cpu, ends in timelines:  # a CPU's runs follow one another: the first that ends after a
                spent(cpu, bisect.bisect_right(ends, a), a, b, ran, lambda tid: who(tid, thread))
            spent(waits, bisect.bisect_left(wait_starts, a - longest_wait), a, b, waited, lambda tid: who(tid, thread))
        return ws, ran, waited

    timelines = [(cpu, [r[1] for r in cpu]) for cpu in runs.values()]
    wait_starts = [w[0] for w in waits]
    longest_wait = max((e - s for s, e, _ in waits), default=0)
    slow, middle = by_time(found, .02)
    for thread in (False, True):
        (ws, ran, waited), (mws, mran, mwaited) = tally(slow, thread), tally(middle, thread)
        total, mtotal = sum(b - a for a, b in ws), sum(b - a for a, b in mws)
        print("  %s during the longest step of the slowest %d puts (%.1f ms in all) | of the middle %d (%.1f ms):"
              % ("each thread's" if thread else "each process's", len(slow), total * 1000, len(middle), mtotal * 1000))
        print("  %-60s %s" % ("", "share of the %d CPUs  | run-queue wait, ms a step" % cpus))
        keys = sorted(set(ran) | set(waited), key=lambda k: -(ran.get(k, 0) + waited.get(k, 0)))
        for k in keys[:20 if thread else 8]:
            print("  %-60s %6.1f%% | %6.1f%%   %7.3f | %6.3f"
                  % (k[:60], ran.get(k, 0) * 100 / total / cpus, mran.get(k, 0) * 100 / mtotal / cpus,
                     waited.get(k, 0) * 1000 / len(ws), mwaited.get(k, 0) * 1000 / len(mws)))


def main():
    args = argparse.ArgumentParser()
    args.add_argument("system", choices=("capstan", "etcd"))
    args.add_argument("path")
    args.add_argument("follower")
    args.add_argument("leader")
    args.add_argument("other")
    args.add_argument("gclogs", nargs="*")
    args.add_argument("--sched", help="perf script output of sched_switch/sched_wakeup (perf record -k mono)")
    args.add_argument("--offset", type=float, default=0.0, help="wall clock minus CLOCK_MONOTONIC, seconds")
    args.add_argument("--last", type=int, default=0, help="only the last puts (the measured ones, not the client's warm-up)")
    args.add_argument("--threads", help="lines of 'tid name': the members' full thread names")
    args.add_argument("--member", nargs=2, action="append", default=[], metavar=("PID", "ROLE"))
    a = args.parse_args()
    found = puts(a.system, a.path, a.follower, a.leader, a.other)[-a.last if a.last else 0:]
    if not found:
        sys.exit("no complete put found in " + a.path)
    print("%s, %d puts (ms)" % (a.system, len(found)))
    for name, start, end in STEPS:
        v = [p[end] - p[start] for p in found]
        print("  %-46s p50 %6.3f  p90 %6.3f  p99 %6.3f" % (name, quantile(v, .5), quantile(v, .9), quantile(v, .99)))
    # Where the tail is: the slowest 2% of the puts (by their time in the members) against the
    # middle 20%, each step's mean in both.
    slow, middle = by_time(found, .02)
    print("  step means (ms): the slowest %d puts | the middle %d" % (len(slow), len(middle)))
    for name, start, end in STEPS:
        mean = lambda ps: sum(p[end] - p[start] for p in ps) * 1000 / len(ps)
        print("  %-46s %8.3f | %6.3f" % (name, mean(slow), mean(middle)))
    # One long step, or all steps longer? And alone, or in a slow spell?
    parts = STEPS[:-1]
    longest = {}
    for p in slow:
        name, start, end = max(parts, key=lambda s: p[s[2]] - p[s[1]])
        longest.setdefault(name, []).append(p[end] - p[start])
    print("  the slowest puts' longest step: how often, its mean (ms)")
    for name, _, _ in parts:
        v = longest.get(name, [])
        print("  %-46s %4d  %6.3f" % (name, len(v), sum(v) * 1000 / len(v) if v else 0))
    order = {id(p): i for i, p in enumerate(found)}
    slow_at = {order[id(p)] for p in slow}
    near = sum(1 for i in slow_at if (i - 1) in slow_at or (i + 1) in slow_at)
    print("  slow puts next to another slow put: %d of %d" % (near, len(slow_at)))
    if a.gclogs:
        overlap(found, pauses(a.gclogs))
    if a.sched:
        stalls(found, a.sched, a.offset, dict(a.member), a.threads)


if __name__ == "__main__":
    main()
