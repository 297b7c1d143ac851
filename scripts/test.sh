#!/usr/bin/env bash
# Run every edgeseg test: Rust unit and integration tests, the golden check
# against onnxruntime, the Python suite (pycocotools, evaluate.py, data
# generator, training smoke), the dashboard in headless Chromium. Installs the
# Python and npm requirements it needs.
#
#   bash scripts/test.sh            # everything
#   EDGESEG_TRAIN_SMOKE=0 bash scripts/test.sh   # skip the torch training smoke test
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python requirements"
python3 -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
if [ "${EDGESEG_TRAIN_SMOKE:-1}" = "1" ]; then
  python3 -m pip install -q --disable-pip-version-check -r scripts/requirements-train.txt
fi

step "Build (debug; dependencies optimised, see Cargo.toml)"
cargo build --locked --all-targets

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
