#!/usr/bin/env bash
# Where a request's server CPU goes: user space against the kernel, for solo,
# the floor and may_minihttp under the same wrk load, in interleaved rounds,
# then the medians and the ratios solo / peer.
#
# The shared harness (bench/compare.sh) reports utime + stime together; this
# splits them, and counts the TCP segments a request costs, to show what a
# server can and cannot cut: the kernel's part (the syscalls and the TCP stack
# under them) costs every server making one read and one write a batch the
# same, so user space is what separates them; the host's drift moves every
# figure besides (docs/benchmarks.md). The row "solo kernel alone" is solo's
# kernel part over each peer's total: the ratio solo would have with no user
# time at all, the most that any cut in user space could win in that run. The
# lines after it pair the slots of each round and give the median ratio with
# its spread.
#
#   bench/cpu_split.sh                  # 3 rounds, 6 s a point
#   ROUNDS=5 DUR=8 bench/cpu_split.sh
#
# Points: `GET /` 16 deep on 256 connections (wrk with the harness's
# pipeline.lua), and one request at a time on 256 connections. Every server is
# pinned to CPU 0 and wrk to CPU 1; loopback only; each server is started and
# stopped by PID. Needs wrk (apt-get install -y wrk) and the shared peers
# (../shared/bench/peers, built here with cargo).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds=${ROUNDS:-3}
dur=${DUR:-6}
peers_dir="$root/../shared/bench/peers"
if [ ! -f "$peers_dir/pipeline.lua" ]; then
  echo "cpu_split.sh: the shared peers are not at $peers_dir" >&2
  exit 1
fi
command -v wrk >/dev/null || { echo "cpu_split.sh: wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --quiet --release --example hello
target_dir=${CARGO_TARGET_DIR:-$root/target}
for peer in floor may_minihttp_peer; do
  cargo build --quiet --release --manifest-path "$peers_dir/$peer/Cargo.toml" --target-dir "$target_dir"
done
port=18700
declare -A cmd=(
  [solo]="$target_dir/release/examples/hello $port"
  [floor]="$target_dir/release/floor 127.0.0.1:$port"
  [may_minihttp]="$target_dir/release/may_minihttp_peer 127.0.0.1:$port"
)
servers=(solo floor may_minihttp)
out=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT
# utime and stime of a process, in clock ticks (fields 14 and 15 of stat).
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12, $13}' "/proc/$1/stat"; }
# Segments sent on this machine's TCP so far (loopback only: both ends').
out_segs() { awk '/^Tcp:/ && $2 ~ /^[0-9]/ {print $12}' /proc/net/snmp; }

measure() { # name point conns depth (and the round, from the loop below)
  local name=$1 point=$2 conns=$3 depth=$4 script=()
  [ "$depth" -gt 1 ] && script=(-s "$peers_dir/pipeline.lua")
  local before segs_before after segs_after text requests
  before=$(cpu_ticks "$server_pid")
  segs_before=$(out_segs)
  text=$(taskset -c 1 wrk -t1 -c"$conns" -d"${dur}s" "${script[@]}" "http://127.0.0.1:$port/" -- "$depth" 2>&1)
  after=$(cpu_ticks "$server_pid")
  segs_after=$(out_segs)
  requests=$(echo "$text" | awk '/requests in/ {print $1}')
  if [ -z "$requests" ]; then
    echo "cpu_split.sh: wrk gave no count for $name at $point:" >&2
    echo "$text" >&2
    requests=0 # left out of the medians
  fi
  echo "$name $point $requests $before $after $segs_before $segs_after $round" >> "$out/figures"
}

for ((round = 1; round <= rounds; round++)); do
  for ((k = 0; k < ${#servers[@]}; k++)); do
    name=${servers[$(( (k + round - 1) % ${#servers[@]} ))]}
    echo "round $round of $rounds: $name"
    # shellcheck disable=SC2086 # the command line is split on purpose
    taskset -c 0 ${cmd[$name]} > "$out/$name.$round.log" 2>&1 &
    server_pid=$!
    up=""
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }
      sleep 0.1
    done
    if [ -z "$up" ] || ! kill -0 "$server_pid" 2>/dev/null; then
      echo "cpu_split.sh: $name did not come up on port $port; the end of its log:" >&2
      tail -n 20 "$out/$name.$round.log" >&2
      exit 1
    fi
    taskset -c 1 wrk -t1 -c256 -d2s "http://127.0.0.1:$port/" > /dev/null 2>&1 # warm-up
    measure "$name" p16 256 16
    measure "$name" p1 256 1
    stop_server
  done
done

python3 - "$out/figures" "$(getconf CLK_TCK)" "$rounds" "${servers[@]}" <<'PY'
import statistics, sys
path, hz, rounds, servers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rows = {}
by_round = {}
for line in open(path):
    name, point, n, u0, s0, u1, s1, g0, g1, r = line.split()
    n = int(n)
    if n == 0:
        continue
    user = (int(u1) - int(u0)) / hz / n * 1e6
    kernel = (int(s1) - int(s0)) / hz / n * 1e6
    segs = (int(g1) - int(g0)) / n
    rows.setdefault((name, point), []).append((user, kernel, user + kernel, segs))
    by_round[(name, point, r)] = user + kernel
print(f"medians of {rounds} round(s), server µs per request (clock ticks of 1/{hz} s); ratio = solo / peer")
labels = {"p16": "16 deep, 256 connections", "p1": "one at a time, 256 connections"}
peers = [s for s in servers if s != "solo"]


def med(s, point, i):
    v = [row[i] for row in rows.get((s, point), [])]
    return statistics.median(v) if v else None


def ratio(a, b):
    return f"x{a / b:.2f}" if a is not None and b else ""


for point in ("p16", "p1"):
    print(f"  {labels[point]}")
    print("    " + f"{'':18}" + "".join(f"{s:>14}" for s in servers) + "".join(f"{'solo/' + p:>20}" for p in peers))
    for i, what in enumerate(["user", "kernel", "total", "TCP segments"]):
        fmt = "{:.2f}" if i == 3 else "{:.3f}"
        cells = "".join(
            f"{(fmt.format(med(s, point, i)) if med(s, point, i) is not None else 'not measured'):>14}" for s in servers
        )
        ratios = "".join(f"{ratio(med('solo', point, i), med(p, point, i)):>20}" for p in peers)
        print("    " + f"{what:18}" + cells + ratios)
    # The lowest ratio user-space work could reach: solo's kernel part
    # alone against each peer's total.
    bound = "".join(f"{ratio(med('solo', point, 1), med(p, point, 2)):>20}" for p in peers)
    print("    " + f"{'solo kernel alone':18}" + " " * (14 * len(servers)) + bound)
    # Each round's ratio of totals, solo's slot against the peer's in the
    # same round: the host's speed drifts over minutes and moves every
    # server's figure; pairing slots of one round (tens of seconds apart)
    # leaves out the slow part of that drift, and the spread shows how far
    # one slot still moves.
    for p in peers:
        paired = sorted(
            by_round[("solo", point, r)] / by_round[(p, point, r)]
            for (name, pt, r) in by_round
            if name == p and pt == point and ("solo", point, r) in by_round and by_round[(p, point, r)]
        )
        if paired:
            print(
                f"    total, solo/{p} round by round: median x{statistics.median(paired):.2f}"
                f" (x{paired[0]:.2f} to x{paired[-1]:.2f}, {len(paired)} rounds)"
            )
PY
echo "server logs and raw figures: $out"
