#!/usr/bin/env bash
# c50k against nginx and against solo, in one run, with the same flags:
# the same client processes (pinned to CPU 1), the same phases, the same
# report. nginx runs with as many workers as the per-process descriptor limit
# needs for N connections (3 for 50,000 under this VM's 20,000), every worker
# pinned to CPU 0 like solo's server processes, listening with reuseport so
# the kernel spreads connections over them as it does over solo's.
#
#   bench/c50k_compare.sh                 # -n 50000 --duration 10 --rate 20000
#   bench/c50k_compare.sh -n 20000 --duration 5
#
# Loopback only; nginx is started and stopped by PID (SIGQUIT, then SIGKILL
# if it does not leave within 10 s). Exits non-zero if either run failed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v nginx >/dev/null || { echo "c50k_compare.sh: nginx is not installed (apt-get install nginx)" >&2; exit 1; }
n=50000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "-n" ] || [ "${args[$i]}" = "--connections" ]; then n=${args[$((i + 1))]}; fi
done
[ ${#args[@]} -gt 0 ] || args=(-n "$n")
hard=$(ulimit -Hn)
per=$((hard - 100))
workers=$(( (n + per - 1) / per ))
port=18600
cargo build --quiet --release --example c50k

dir=$(mktemp -d)
mkdir -p "$dir/logs"
cat > "$dir/nginx.conf" <<CONF
worker_processes $workers;
worker_rlimit_nofile $hard;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $per; use epoll; multi_accept off; }
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
nginx_pid=$!
stop_nginx() {
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$nginx_pid" 2>/dev/null || true
}
trap stop_nginx EXIT
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done
echo "=== nginx $(nginx -v 2>&1 | sed 's/.*\///'): $workers worker(s), all on CPU 0, reuseport"
nginx_rc=0
./target/release/examples/c50k "${args[@]}" --target "127.0.0.1:$port" || nginx_rc=$?
stop_nginx
trap - EXIT
rm -rf "$dir"

echo
echo "=== solo (the same flags; its own server process(es) on CPU 0)"
solo_rc=0
./target/release/examples/c50k "${args[@]}" || solo_rc=$?
[ "$nginx_rc" = 0 ] && [ "$solo_rc" = 0 ]
