#!/usr/bin/env bash
# Open-loop latency of solo against the harness's `floor` server, under the
# same client (examples/c50k.rs with --target), in interleaved rounds.
#
#   bench/open_loop.sh [N] [ROUNDS] [RATE] [SECONDS]   # defaults: 15000 5 20000 5
#
# Each round starts solo (examples/hello) and then the floor on CPU 0, loads
# each with `c50k --procs 1 -n N --rate RATE --duration SECONDS --target`
# (the client pins itself to CPU 1), and stops it. One process per side: the
# floor cannot share a port, so N must fit one process's descriptor limit.
# Prints each round's p50/p99/p999, then the medians and the p99 ratio
# solo / floor (the issue's target: at most 1.2). Latency is measured from
# each request's scheduled send time (no coordinated omission).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="$root/../shared/bench/peers"
n="${1:-15000}"
rounds="${2:-5}"
rate="${3:-20000}"
secs="${4:-5}"
port="${PORT:-18300}"
cd "$root"
cargo build --release --example hello --example c50k
# Where cargo put them (CARGO_TARGET_DIR moves solo's build too), before
# the floor's build is pointed elsewhere.
solo_bin="${CARGO_TARGET_DIR:-$root/target}/release/examples"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$peers/target}"
cargo build --release --manifest-path "$peers/floor/Cargo.toml"
floor="$CARGO_TARGET_DIR/release/floor"
log="$(mktemp -d)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap stop_server EXIT

# Leaves "p50 p99 p999" (µs) of one run's open-loop phase in $result.
run_one() {
  local name="$1" round="$2"
  case "$name" in
    solo) taskset -c 0 "$solo_bin/hello" "$port" >"$log/$name-$round.server" 2>&1 & ;;
    floor) taskset -c 0 "$floor" "127.0.0.1:$port" >"$log/$name-$round.server" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  timeout -k 5 300 "$solo_bin/c50k" --procs 1 -n "$n" --rate "$rate" \
    --duration "$secs" --target "127.0.0.1:$port" >"$log/$name-$round.client" 2>&1 || {
    echo "open_loop.sh: the client failed against $name; its log:" >&2
    tail -20 "$log/$name-$round.client" >&2
    exit 1
  }
  stop_server
  local line
  line="$(grep "4 open loop" "$log/$name-$round.client")"
  result="$(sed -E 's/.*p50 ([0-9]+) µs, p99 ([0-9]+) µs, p999 ([0-9]+) µs.*/\1 \2 \3/' <<<"$line")"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "open loop: $n connections, $rate req/s, ${secs} s per run, $rounds rounds; server on CPU 0, client on CPU 1"
: >"$log/solo.p99"
: >"$log/floor.p99"
: >"$log/ratio"
for round in $(seq "$rounds"); do
  # Alternate who goes first, so neither always runs on a fresher machine.
  if [ $((round % 2)) -eq 1 ]; then order="solo floor"; else order="floor solo"; fi
  declare -A p99=()
  for name in $order; do
    run_one "$name" "$round"
    read -r p50 p99v p999 <<<"$result"
    echo "round $round  $name: p50 $p50 µs  p99 $p99v µs  p999 $p999 µs"
    echo "$p99v" >>"$log/$name.p99"
    p99[$name]=$p99v
    sleep 2
  done
  awk -v s="${p99[solo]}" -v f="${p99[floor]}" 'BEGIN {printf "%.3f\n", s / f}' >>"$log/ratio"
done
solo_med="$(median <"$log/solo.p99")"
floor_med="$(median <"$log/floor.p99")"
echo "median p99: solo $solo_med µs, floor $floor_med µs; solo/floor per round: $(tr '\n' ' ' <"$log/ratio")"
echo "p99 ratio (median of medians): $(awk -v s="$solo_med" -v f="$floor_med" 'BEGIN {printf "%.2f", s / f}'); median of per-round ratios: $(median <"$log/ratio")"
echo "logs: $log"
