#!/usr/bin/env bash
# Build a release tarball for one board target:
#
#   bash scripts/package.sh aarch64-unknown-linux-gnu      # Pi 4/5 (64-bit OS), Jetson
#   bash scripts/package.sh aarch64-unknown-linux-musl     # same boards, static binary
#   bash scripts/package.sh armv7-unknown-linux-gnueabihf  # Pi on a 32-bit OS
#   bash scripts/package.sh x86_64-unknown-linux-gnu       # a PC next to the line
#
# Writes dist/edgeseg-VERSION-TARGET.tar.gz holding edgeseg-VERSION-TARGET/:
#   bin/edgeseg (release, stripped), models/ (every committed model, cards, README),
#   boards/ (the board configs, README and edgeseg.service), README.md.
# Board configs name their model as ../models/..., which stays valid inside the package;
# scripts/deploy.sh installs it under /opt/edgeseg. Cross targets need the packages named
# in .cargo/config.toml and `rustup target add TARGET`.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/package.sh TARGET (e.g. aarch64-unknown-linux-gnu)}"
case "$target" in
  aarch64-unknown-linux-gnu|aarch64-unknown-linux-musl) strip_bin=aarch64-linux-gnu-strip ;;
  armv7-unknown-linux-gnueabihf) strip_bin=arm-linux-gnueabihf-strip ;;
  x86_64-unknown-linux-gnu) strip_bin=strip ;;
  *) echo "package.sh: unsupported target $target (see the list at the top of this script)" >&2; exit 2 ;;
esac
command -v "$strip_bin" >/dev/null || { echo "package.sh: $strip_bin not found; install binutils for $target (gcc-aarch64-linux-gnu or gcc-arm-linux-gnueabihf)" >&2; exit 2; }
rustup target list --installed 2>/dev/null | grep -qx "$target" || {
  echo "package.sh: rust target $target is not installed; fix: rustup target add $target" >&2; exit 2; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="edgeseg-$version-$target"
cargo build --release --locked --target "$target" --bin edgeseg
built="${CARGO_TARGET_DIR:-target}/$target/release/edgeseg"

stage="dist/$name"
rm -rf "$stage" "dist/$name.tar.gz"
mkdir -p "$stage/bin" "$stage/models" "$stage/boards"
"$strip_bin" -o "$stage/bin/edgeseg" "$built"
cp models/*.onnx models/*.card.json models/README.md "$stage/models/"
cp boards/*.toml boards/README.md boards/edgeseg.service "$stage/boards/"
cp README.md "$stage/"
# Reproducible archive: fixed owner and mtime, sorted names.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}" \
  -C dist -czf "dist/$name.tar.gz" "$name"
rm -rf "$stage"
echo "dist/$name.tar.gz: $(du -h "dist/$name.tar.gz" | cut -f1), binary $(du -h "$built" | cut -f1) before strip"
sha256sum "dist/$name.tar.gz"
