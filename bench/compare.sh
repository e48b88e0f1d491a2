#!/usr/bin/env bash
# Side-by-side comparison of solo with nginx, hyper, may_minihttp, hyperlane and
# the floor, using the shared peer harness (../shared/bench/peers, not part of
# solo). Builds examples/hello in release mode and runs the harness with it.
#
#   bench/compare.sh            # full run: 5 interleaved rounds, 10 s points, c=256 and c=10000
#   QUICK=1 bench/compare.sh    # one round, 5 s points, no c=10000 point (about 4 minutes)
#
# Every server is pinned to CPU 0 and wrk to CPU 1 by the harness; results go to
# the harness's results/<timestamp>/ and end with a "solo vs best peer" line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
harness="$root/../shared/bench/peers/run.sh"
if [ ! -x "$harness" ]; then
  echo "compare.sh: the peer harness is not at $harness (it lives beside the checkout, in shared/)" >&2
  exit 1
fi
cd "$root"
cargo build --release --example hello
# Where cargo put it: CARGO_TARGET_DIR moves solo's build too.
export SOLO_CMD="${CARGO_TARGET_DIR:-$root/target}/release/examples/hello {port}"
export PIPELINE="${PIPELINE:-16}"
# The harness's own default is 3 rounds; a full run here takes 5, so that one
# slow round (rounds of the same binary differ by up to 15 % on these VMs)
# moves a median less. QUICK keeps its single round.
if [ "${QUICK:-0}" != 1 ]; then
  export ROUNDS="${ROUNDS:-5}"
fi
exec "$harness" "$@"
