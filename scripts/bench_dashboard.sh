#!/usr/bin/env bash
# CPU cost of the dashboard: process CPU time (utime+stime from /proc/PID/stat)
# of `edgeseg run` on the sample frames at 10 FPS for N seconds, with the
# dashboard off, then on with one viewer of the MJPEG stream and the SSE feed
# (curl; the viewer's own CPU is not counted). The first seconds (model loads)
# are left out.
#
#   bash scripts/bench_dashboard.sh [SECONDS] [ROUNDS]     # default 20 s, 1 round
#   EDGESEG_BIN=path/to/edgeseg bash scripts/bench_dashboard.sh
#   EDGESEG_MODEL=models/yolov8n_seg_defects.onnx bash scripts/bench_dashboard.sh   # a model fast enough for a real 10 FPS
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
rounds=${2:-1}
warmup=5
bin=${EDGESEG_BIN:-${CARGO_TARGET_DIR:-target}/debug/edgeseg}
[ -x "$bin" ] || { echo "$bin not found; fix: cargo build (or set EDGESEG_BIN)" >&2; exit 1; }
tick=$(getconf CLK_TCK)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# utime+stime in ticks: the whole process, the output thread (where sinks run), the dashboard's threads.
ticks() {
  local total out dash
  total=$(awk '{print $14 + $15}' "/proc/$1/stat")
  out=0; dash=0
  for t in /proc/"$1"/task/*; do
    name=$(cat "$t/comm" 2>/dev/null || true)
    v=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)
    case "$name" in output) out=$((out + v));; dashboard*) dash=$((dash + v));; esac
  done
  echo "$total $out $dash"
}

measure() { # $1 = off|on; prints: total output dashboard ticks, frames judged, over $secs
  local cfg="$tmp/$1.toml" log="$tmp/$1.jsonl"
  printf '[model]\npath = "%s/%s"\n[source]\nkind = "sample"\nfps = 10\n[sinks.stdout]\n' "$PWD" "${EDGESEG_MODEL:-models/unet_defects.onnx}" > "$cfg"
  if [ "$1" = on ]; then
    printf '[dashboard]\nlisten = "127.0.0.1:%s"\n' "$port" >> "$cfg"
  fi
  RUST_LOG=warn "$bin" run --config "$cfg" > "$log" &
  local pid=$!
  local viewers=()
  if [ "$1" = on ]; then
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/api/status" && break; sleep 0.2; done
    curl -sN -o /dev/null "http://127.0.0.1:$port/api/stream.mjpeg" & viewers+=($!)
    curl -sN -o /dev/null "http://127.0.0.1:$port/api/events" & viewers+=($!)
  fi
  sleep "$warmup"
  local a fa; a=($(ticks "$pid")); fa=$(wc -l < "$log")
  sleep "$secs"
  local b fb; b=($(ticks "$pid")); fb=$(wc -l < "$log")
  kill "${viewers[@]}" 2>/dev/null || true
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(( b[0] - a[0] )) $(( b[1] - a[1] )) $(( b[2] - a[2] )) $(( fb - fa ))"
}

results=()
for r in $(seq "$rounds"); do
  results+=("$(measure off)" "$(measure on)")
done
python3 - "$tick" "$secs" "${results[@]}" <<'PY'
import sys
tick, secs = float(sys.argv[1]), float(sys.argv[2])
runs = [list(map(float, r.split())) for r in sys.argv[3:]]
off, on = runs[0::2], runs[1::2]
s = lambda rs, i: sum(r[i] for r in rs)
f_off, f_on = s(off, 3), s(on, 3)
print(f"{len(off)} round(s) x {secs:.0f} s, sample source at 10 FPS (CLK_TCK {tick:.0f})")
print(f"  off: {s(off,0)/tick:.2f} s CPU, output thread {s(off,1)/tick:.2f} s, {f_off:.0f} frames judged")
print(f"  on : {s(on,0)/tick:.2f} s CPU, output thread {s(on,1)/tick:.2f} s, dashboard threads {s(on,2)/tick:.2f} s, {f_on:.0f} frames judged")
per = lambda t, f: t / max(f, 1)
pipeline = per(s(off, 0), f_off)
extra = per(s(on, 1), f_on) - per(s(off, 1), f_off) + per(s(on, 2), f_on)
print(f"  whole process, CPU per frame: off {1000*pipeline/tick:.1f} ms, on {1000*per(s(on,0), f_on)/tick:.1f} ms ({100*(per(s(on,0),f_on)-pipeline)/pipeline:+.2f} %, noisy on a shared machine)")
print(f"dashboard overhead (its threads + the extra on the output thread, per frame): {100*extra/pipeline:+.2f} % of pipeline CPU time")
PY
