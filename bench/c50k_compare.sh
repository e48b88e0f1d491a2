#!/usr/bin/env bash
# c50k against nginx, the floor and solo, with the same flags: the same
# client processes (pinned to CPU 1), the same phases, the same report, in
# interleaved rounds (the order rotates each round), then the medians and
# the ratios solo / nginx and solo / floor.
#
# nginx runs with as many workers as solo has server processes (the
# per-process descriptor limit decides: 3 for 50,000 under this VM's 20,000),
# every worker pinned to CPU 0 like solo's, listening with reuseport so the
# kernel spreads connections over them as it does over solo's. The floor
# (../shared/bench/peers/floor: one read and one write a readiness, no
# parsing) runs as many processes the same way, with --reuseport; at 50,000
# connections it is a reference, not a limit (docs/benchmarks.md says why).
#
#   bench/c50k_compare.sh                       # -n 50000, 5 rounds
#   ROUNDS=1 bench/c50k_compare.sh -n 20000 --duration 5
#
# nginx is installed with apt when it is missing (as root). The floor is
# skipped, with a note, when the shared folder is not there. Loopback only;
# every server is started and stopped by PID (SIGQUIT/SIGTERM, then SIGKILL
# if it does not leave within 10 s). Each run's full report is kept in the
# folder printed at the end. Exits non-zero if any run failed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds=${ROUNDS:-5}
if ! command -v nginx >/dev/null; then
  echo "c50k_compare.sh: nginx is missing: apt-get install -y nginx-light" >&2
  { apt-get update -qq && apt-get install -y -qq nginx-light; } >/dev/null \
    || { echo "c50k_compare.sh: could not install nginx" >&2; exit 1; }
fi
n=50000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "-n" ] || [ "${args[$i]}" = "--connections" ]; then n=${args[$((i + 1))]}; fi
done
[ ${#args[@]} -gt 0 ] || args=(-n "$n")
hard=$(ulimit -Hn)
per=$((hard - 100))
procs=$(( (n + per - 1) / per ))
port=18600
cargo build --quiet --release --example c50k
# Where cargo put it: CARGO_TARGET_DIR moves solo's build too.
c50k_bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/c50k"

floor_dir="$root/../shared/bench/peers/floor"
floor_bin=""
if [ -f "$floor_dir/Cargo.toml" ]; then
  target_dir=${CARGO_TARGET_DIR:-$floor_dir/target}
  cargo build --quiet --release --manifest-path "$floor_dir/Cargo.toml" --target-dir "$target_dir"
  floor_bin="$target_dir/release/floor"
else
  echo "note: $floor_dir is not there: the floor is skipped"
fi

out=$(mktemp -d)
pids=()
stop_servers() {
  for pid in "${pids[@]}"; do kill -QUIT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap stop_servers EXIT
wait_for_port() {
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  echo "c50k_compare.sh: nothing answers on port $port" >&2
  return 1
}

# Each run_* runs in the pipeline's subshell: its servers are stopped when
# it ends, however it ends.
run_nginx() {
  trap stop_servers EXIT
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/logs"
  # nginx closes idle keep-alive connections, ahead of need, while fewer
  # than 1/16 of its worker_connections are free (since 1.19.2): with slots
  # for exactly the descriptors, a worker near the limit would close the
  # held connections this run measures. Slots for 16/15 of the descriptors
  # leave the descriptor limit, as for solo, the one that binds.
  local slots=$(( per * 16 / 15 + 16 ))
  cat > "$dir/nginx.conf" <<CONF
worker_processes $procs;
worker_rlimit_nofile $hard;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $slots; use epoll; multi_accept off; }
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    tcp_nodelay on;
    server {
        listen 127.0.0.1:$port reuseport backlog=4096;
        location / { return 200 "Hello, World!"; }
    }
}
CONF
  taskset -c 0 nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
  wait_for_port
  echo "=== nginx $(nginx -v 2>&1 | sed 's/.*\///'): $procs worker(s), all on CPU 0, reuseport"
  local rc=0
  "$c50k_bin" "${args[@]}" --target "127.0.0.1:$port" || rc=$?
  stop_servers
  rm -rf "$dir"
  return $rc
}

run_floor() {
  trap stop_servers EXIT
  for _ in $(seq 1 "$procs"); do
    taskset -c 0 "$floor_bin" "127.0.0.1:$port" --reuseport &
    pids+=($!)
  done
  wait_for_port
  echo "=== floor: $procs process(es), all on CPU 0, reuseport"
  local rc=0
  "$c50k_bin" "${args[@]}" --target "127.0.0.1:$port" || rc=$?
  stop_servers
  return $rc
}

run_solo() {
  echo "=== solo (the same flags; its own server process(es) on CPU 0)"
  "$c50k_bin" "${args[@]}"
}

servers=(nginx solo)
[ -n "$floor_bin" ] && servers=(nginx floor solo)
failed=0
for ((r = 1; r <= rounds; r++)); do
  count=${#servers[@]}
  for ((k = 0; k < count; k++)); do
    name=${servers[$(( (k + r - 1) % count ))]}
    echo
    echo "##### round $r of $rounds: $name"
    if ! "run_$name" 2>&1 | tee "$out/$name.$r.txt"; then
      echo "c50k_compare.sh: the $name run of round $r failed" >&2
      failed=1
    fi
  done
done

echo
python3 - "$out" "$rounds" "${servers[@]}" <<'PY'
import re, statistics, sys
out, rounds, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def figures(text):
    f = {}
    def grab(key, pattern):
        m = re.search(pattern, text)
        if m:
            f[key] = float(m.group(1))
    grab("idle", r"2 idle hold +(\d+) B/conn")
    grab("held_rps", r"3 held\+active .*?: (\d+) req/s")
    grab("held_p99", r"3 held\+active .*?p99 (\d+) µs")
    grab("held_cpu", r"3 held\+active .*?server CPU ([\d.]+)%")
    grab("held_kernel", r"3 held\+active .*?server CPU [\d.]+% of one core, ([\d.]+)% in the kernel")
    grab("held_client", r"3 held\+active .*?client CPU (\d+)%")
    grab("all_rps", r"4 all active +(\d+) req/s")
    grab("all_cpu", r"4 all active .*?server CPU ([\d.]+)%")
    grab("open_p99", r"5 open loop .*?p99 (\d+) µs")
    grab("open_cpu", r"5 open loop .*?server CPU ([\d.]+)%")
    if "held_rps" in f and "held_cpu" in f and f["held_rps"] > 0:
        f["held_us"] = f["held_cpu"] / 100 / f["held_rps"] * 1e6
        if "held_kernel" in f:
            # The kernel's part is most of every server's: the syscalls and
            # the TCP stack, and here also each sleep in epoll_wait, which a
            # faster server takes more often (docs/benchmarks.md).
            f["held_kernel_us"] = f["held_kernel"] / 100 / f["held_rps"] * 1e6
            f["held_user_us"] = f["held_us"] - f["held_kernel_us"]
    return f
runs = {s: [] for s in servers}
for s in servers:
    for r in range(1, rounds + 1):
        try:
            runs[s].append(figures(open(f"{out}/{s}.{r}.txt").read()))
        except OSError:
            # A round with no report keeps its place: rounds pair by index.
            runs[s].append({})
def median(s, key):
    values = [f[key] for f in runs[s] if key in f]
    return statistics.median(values) if values else None
rows = [
    ("held+active req/s", "held_rps", "{:.0f}", "higher"),
    ("held+active server CPU µs/request", "held_us", "{:.2f}", "lower"),
    ("  of it in the kernel", "held_kernel_us", "{:.2f}", "lower"),
    ("  of it in user space", "held_user_us", "{:.2f}", "lower"),
    ("held+active p99 µs", "held_p99", "{:.0f}", "lower"),
    ("held+active client CPU %", "held_client", "{:.0f}", None),
    ("all active req/s", "all_rps", "{:.0f}", "higher"),
    ("open loop server CPU %", "open_cpu", "{:.0f}", "lower"),
    ("open loop p99 µs", "open_p99", "{:.0f}", "lower"),
    ("idle B/conn (user space)", "idle", "{:.0f}", "lower"),
]
print(f"medians of {rounds} round(s); ratio = solo / peer (\"not measured\" where a run gave no figure)")
peers = [s for s in servers if s != "solo"]
print("  " + f"{'':36}" + "".join(f"{s:>12}" for s in servers) + "".join(f"{'solo/' + p:>14}" for p in peers))
for label, key, fmt, _ in rows:
    cells = []
    for s in servers:
        v = median(s, key)
        cells.append(f"{fmt.format(v) if v is not None else 'not measured':>12}")
    ratios = []
    for p in peers:
        a, b = median("solo", key), median(p, key)
        ratios.append(f"{('x%.2f' % (a / b)) if a is not None and b else '':>14}")
    print("  " + f"{label:36}" + "".join(cells) + "".join(ratios))
# One slow stretch of the host can take a round or two of one server: the
# rounds, and each round's ratio (servers of one round run minutes apart, not
# at once), show whether a median ratio stands on all of them.
print("held+active, round by round: req/s and server CPU µs/request")
for s in servers:
    cells = [f"{f['held_rps']:.0f} / {f['held_us']:.2f}" if "held_us" in f else "not measured" for f in runs[s]]
    print(f"  {s:10}" + "".join(f"{c:>20}" for c in cells))
for p in peers:
    pairs = list(zip(runs["solo"], runs[p]))
    cells = [
        f"x{a['held_rps'] / b['held_rps']:.2f} / x{a['held_us'] / b['held_us']:.2f}"
        if "held_us" in a and "held_us" in b else "not measured"
        for a, b in pairs
    ]
    print(f"  {'solo/' + p:10}" + "".join(f"{c:>20}" for c in cells))
PY
echo "full reports: $out"
exit $failed
