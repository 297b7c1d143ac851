#!/usr/bin/env bash
# The emulated board test: boots Debian's current arm64 kernel on qemu's `virt` board
# (Cortex-A72, one core, TCG) with an initramfs holding busybox, the vivid camera and
# gpio-sim modules, a static aarch64 edgeseg and boards/qemu-virt.toml, and checks what
# the guest reports on its serial console (tests/board/init):
#   - run 1 (continuous): >= 30 frames captured from /dev/video0 through the real V4L2
#     path, every requested frame judged, the gpio-sim reject line pulsed once per
#     failing frame (read back through sysfs);
#   - run 2 (trigger mode): one judged frame per simulated rising edge.
#
#   bash tests/board/run.sh                 # builds the static binary if missing
#
# Environment: EDGESEG_BOARD_BIN (a static aarch64 edgeseg), EDGESEG_BOARD_FRAMES (frames
# judged in run 1, default 2), EDGESEG_BOARD_TIMEOUT (seconds for the guest, default 600: emulated
# YOLOv8n-seg frames took 15 to 48 s here, varying from run to run),
# EDGESEG_BOARD_GPIO=pl061 (use the virt board's PL061 as on kernels without gpio-sim).
# Needs: qemu-system-arm, kmod (depmod/modprobe), dpkg, python3; downloads the kernel and
# busybox .debs from deb.debian.org once into target/board/cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=target/board
mkdir -p "$work"
bin="${EDGESEG_BOARD_BIN:-target/aarch64-unknown-linux-musl/debug/edgeseg}"
frames="${EDGESEG_BOARD_FRAMES:-2}"
timeout_s="${EDGESEG_BOARD_TIMEOUT:-600}"
model=$(sed -n 's|^path = "\.\./\(models/[^"]*\)".*|\1|p' boards/qemu-virt.toml | head -1)
start=$(date +%s)

if [ ! -x "$bin" ]; then
  cargo build --locked --target aarch64-unknown-linux-musl --bin edgeseg
fi

fetched=$(python3 tests/board/fetch_kernel.py --cache "$work/cache" || python3 tests/board/fetch_kernel.py --cache "$work/cache" --offline)
debs=$(python3 -c 'import json,sys; print(" ".join(json.loads(sys.argv[1])["kernel_debs"]))' "$fetched")
busybox=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["busybox_deb"])' "$fetched")
# shellcheck disable=SC2086
python3 tests/board/initramfs.py --debs $debs --busybox "$busybox" --edgeseg "$bin" \
  --model "$model" --out "$work/initrd.gz" --kernel-out "$work/vmlinuz"

echo "board: booting ($(($(date +%s) - start)) s so far; guest timeout ${timeout_s} s)"
set +e
timeout --kill-after=5 "$timeout_s" qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 1 -m 1024 \
  -nographic -no-reboot -nic none -kernel "$work/vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyAMA0 panic=-1 loglevel=4 edgeseg.frames=$frames edgeseg.edges=2 edgeseg.gpio=${EDGESEG_BOARD_GPIO:-auto}" \
  </dev/null | tee "$work/console.log"
qemu_rc=${PIPESTATUS[0]}
set -e
echo "board: qemu exited with $qemu_rc after $(($(date +%s) - start)) s in all"
python3 - "$work/console.log" "$frames" <<'PY'
import json, sys
log, frames = open(sys.argv[1], errors="replace").read(), int(sys.argv[2])
lines = [l for l in log.splitlines() if l.startswith("EDGESEG_BOARD_RESULT ")]
if not lines:
    sys.exit("board: FAIL: no result line on the console (boot failed or timed out); see target/board/console.log")
r = json.loads(lines[-1].split(" ", 1)[1])
problems = []
if not r.get("ok"):
    problems.append(r.get("error", "guest reported failure"))
else:
    a, b = r["run1"], r["run2"]
    if a["exit"] != 0: problems.append(f"run 1 exited with {a['exit']}")
    if a["captured"] < 30: problems.append(f"run 1 captured {a['captured']} frames, want >= 30")
    if a["judged"] != frames: problems.append(f"run 1 judged {a['judged']} frames, want {frames}")
    if a["fail"] < 1: problems.append("run 1 judged no frame as fail, so the reject line was never exercised")
    if a["reject_pulses"] != a["fail"]: problems.append(f"{a['fail']} failing frames but {a['reject_pulses']} reject pulses seen on the line")
    if b is None:
        # PL061 fallback (kernel without gpio-sim): its inputs cannot be driven from inside.
        print("board: no gpio-sim in this kernel: reject line checked on the PL061, trigger run skipped")
    else:
        if b["exit"] != 0: problems.append(f"run 2 exited with {b['exit']}")
        if b["judged"] != b["edges"] or b["edges"] < 1: problems.append(f"run 2: {b['edges']} trigger edges but {b['judged']} frames judged")
print("board:", json.dumps(r))
if problems:
    sys.exit("board: FAIL: " + "; ".join(problems))
print("board: PASS")
PY
