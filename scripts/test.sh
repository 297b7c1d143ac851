#!/usr/bin/env bash
# Run every edgeseg test: Rust unit and integration tests, the golden check
# against onnxruntime, the Python suite (pycocotools, evaluate.py, data
# generator, training smoke), the dashboard in headless Chromium, the aarch64
# build under qemu-user and the emulated board (qemu-system-aarch64). Installs
# the Python and npm requirements it needs; system packages come from .ci/run.
#
#   bash scripts/test.sh            # everything
#   EDGESEG_TRAIN_SMOKE=0 bash scripts/test.sh   # skip the torch training smoke test
#   EDGESEG_CROSS=0 bash scripts/test.sh         # skip the aarch64 suites
# Without the cross tools the aarch64 suites are skipped with a note, unless
# EDGESEG_CROSS=1 (what .ci/run sets): then missing tools are an error.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints the minutes since the start, so a slow CI run shows where its time went.
started=$SECONDS
step() { printf '\n==> [%d:%02d] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

# The Rust build (minutes of CPU) runs while pip downloads (torch is ~3 GB of network time);
# its output goes to a log that is shown if it fails, and the build step below waits for it.
step "Python requirements (the Rust build starts beside them)"
build_log=$(mktemp)
cargo build --locked --all-targets >"$build_log" 2>&1 &
build_pid=$!
python3 -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
if [ "${EDGESEG_TRAIN_SMOKE:-1}" = "1" ]; then
  python3 -m pip install -q --disable-pip-version-check -r scripts/requirements-train.txt
fi

step "The default build needs only a Rust toolchain: no bindgen, no libclang"
# README's first command must work on a machine with only rustup. bindgen (and clang-sys under
# it) needs libclang at build time, so neither may appear among the build or normal
# dependencies of any target.
if cargo tree --locked -e build,normal --target all --prefix none --format '{p}' | grep -E '^(bindgen|clang-sys) '; then
  echo "a dependency of the default build runs bindgen (needs libclang): see the lines above" >&2
  exit 1
fi

# The dev profile builds our own crate at opt-level 2 (Cargo.toml; the README's `cargo run --
# run` is the same build): the golden test runs four networks over every sample with our
# int8 kernels, which took 200 s unoptimised. debug_assertions and overflow checks stay on.
step "Build (dev profile, opt-level 2; dependencies optimised, see Cargo.toml)"
if ! wait "$build_pid"; then
  cat "$build_log" >&2
  exit 1
fi
tail -n 3 "$build_log"

step "Golden files still match onnxruntime"
python3 scripts/golden.py --check

step "Rust tests"
cargo test --locked

step "Dashboard in a real browser (headless Chromium; screenshots in target/screenshots/)"
npm ci --prefix tests/browser --silent --no-audit --no-fund
EDGESEG_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/edgeseg" node tests/browser/dashboard.mjs

step "Python tests"
export EDGESEG_BIN="$PWD/target/debug/edgeseg"
python3 -m pytest tests/python -q

cross_missing=()
for tool in aarch64-linux-gnu-gcc qemu-aarch64 qemu-system-aarch64 depmod modprobe dpkg-deb; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] || cross_missing+=("$tool")
done
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-musl || cross_missing+=("rustup target aarch64-unknown-linux-musl")
if [ "${EDGESEG_CROSS:-auto}" = "0" ]; then
  step "aarch64 suites skipped (EDGESEG_CROSS=0)"
elif [ ${#cross_missing[@]} -gt 0 ]; then
  if [ "${EDGESEG_CROSS:-auto}" = "1" ]; then
    echo "aarch64 suites need: ${cross_missing[*]} (bash .ci/run installs them)" >&2
    exit 1
  fi
  step "aarch64 suites skipped: missing ${cross_missing[*]} (bash .ci/run installs them)"
else
  # The dev profile's opt-level 2 matters most here: the int8 kernels and preprocessing
  # in an unoptimised build would need minutes per frame under emulation.
  # Static musl build: the same binary runs under qemu-user and in the emulated board.
  # Only tests that need no host service and spawn no process (qemu-user cannot exec a
  # second ARM binary without binfmt_misc). The golden test holds the aarch64 masks of
  # every committed semantic model to the x86 onnxruntime references; emulated NEON
  # needs about a minute per U-Net frame, so it checks the first sample of each.
  # The aarch64 dependencies are built at opt-level 1, not 3: the compute these suites run is
  # edgeseg's own kernels (opt-level 2 either way) and tract's assembly ones, so the golden
  # tests took 80 s either way, while the cold build took 8 min instead of about 11.
  aarch64=(--target aarch64-unknown-linux-musl --config 'profile.dev.package."*".opt-level=1')
  export EDGESEG_GOLDEN_IMAGES=1
  step "aarch64 (static musl) under qemu-user, Cortex-A72 kernels (Pi 4): unit, golden, board configs"
  EDGESEG_QEMU_CPU=cortex-a72 cargo test --locked "${aarch64[@]}" --lib --test golden --test boards
  step "aarch64 golden masks under qemu-user, Cortex-A76 (Pi 5)"
  EDGESEG_QEMU_CPU=cortex-a76 cargo test --locked "${aarch64[@]}" --test golden
  unset EDGESEG_GOLDEN_IMAGES
  step "Emulated board: qemu-system-aarch64 virt, vivid camera, gpio-sim (tests/board/run.sh)"
  cargo build --locked "${aarch64[@]}" --bin edgeseg
  bash tests/board/run.sh
fi
step "All tests passed"
