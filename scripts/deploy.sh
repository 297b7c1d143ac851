#!/usr/bin/env bash
# Install a packaged edgeseg on a board over ssh and (re)start its service:
#
#   bash scripts/deploy.sh pi@192.168.1.20 rpi4
#   EDGESEG_TARGET=aarch64-unknown-linux-musl bash scripts/deploy.sh pi@line1 rpi5
#   bash scripts/deploy.sh --dry-run pi@line1 rpi4      # print what would run, touch nothing
#
# Steps: package (scripts/package.sh, unless dist/ has the tarball), copy it over, unpack
# to /opt/edgeseg-VERSION-TARGET and point /opt/edgeseg at it, install boards/BOARD.toml
# as /etc/edgeseg/board.toml (model paths made absolute; an existing board.toml is kept
# unless --force-config, so local tuning survives an update), check the config with
# `edgeseg run --check` *before* touching the running service, install the systemd unit,
# restart, show its status and last log lines. Needs ssh access and sudo on the board.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0 force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --force-config) force=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
host="${1:?usage: scripts/deploy.sh [--dry-run] [--force-config] user@host BOARD}"
board="${2:?usage: scripts/deploy.sh user@host BOARD (one of: $(cd boards && ls *.toml | sed 's/\.toml$//' | tr '\n' ' '))}"
[ -f "boards/$board.toml" ] || { echo "deploy.sh: boards/$board.toml does not exist; boards: $(cd boards && ls *.toml | tr '\n' ' ')" >&2; exit 2; }
target="${EDGESEG_TARGET:-aarch64-unknown-linux-gnu}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="edgeseg-$version-$target"
tarball="dist/$name.tar.gz"

run() { if [ $dry = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi; }
[ -f "$tarball" ] || run bash scripts/package.sh "$target"

remote=$(cat <<SH
set -e
sudo tar -xzf /tmp/$name.tar.gz -C /opt
sudo ln -sfn /opt/$name /opt/edgeseg
sudo mkdir -p /etc/edgeseg /var/lib/edgeseg
if [ $force = 1 ] || [ ! -f /etc/edgeseg/board.toml ]; then
  sed 's|"\.\./models/|"/opt/edgeseg/models/|' /opt/edgeseg/boards/$board.toml | sudo tee /etc/edgeseg/board.toml >/dev/null
else
  echo "keeping the existing /etc/edgeseg/board.toml (--force-config replaces it with boards/$board.toml)"
fi
/opt/edgeseg/bin/edgeseg run --config /etc/edgeseg/board.toml --check
sudo cp /opt/edgeseg/boards/edgeseg.service /etc/systemd/system/edgeseg.service
sudo systemctl daemon-reload
sudo systemctl enable edgeseg >/dev/null
sudo systemctl restart edgeseg
sleep 2
systemctl --no-pager --lines=15 status edgeseg
rm -f /tmp/$name.tar.gz
SH
)
run scp -q "$tarball" "$host:/tmp/$name.tar.gz"
if [ $dry = 1 ]; then
  printf '+ ssh %s <<remote\n%s\nremote\n' "$host" "$remote"
else
  ssh "$host" "$remote"
fi
