#!/usr/bin/env bash
# Cargo runner for the cross targets (.cargo/config.toml): runs an ARM binary under
# qemu-user with a CPU that selects the kernels the real board uses.
#
#   EDGESEG_QEMU_CPU   qemu -cpu value; default cortex-a72 (Pi 4) on aarch64, cortex-a15 on
#                      armv7. cortex-a76 is a Pi 5 (adds the dot-product int8 kernels).
#
# Under qemu-user, /proc/cpuinfo is the host's, so tract cannot read the core type from it:
# the CPU family is passed to tract explicitly (TRACT_CPU_AARCH64_KIND, TRACT_CPU_ARM32_NEON).
set -euo pipefail
bin="$1"
shift
# e_machine at byte 18 of the ELF header: 0xb7 = aarch64, 0x28 = arm.
machine=$(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ')
case "$machine" in
  b7)
    cpu="${EDGESEG_QEMU_CPU:-cortex-a72}"
    export TRACT_CPU_AARCH64_KIND="${TRACT_CPU_AARCH64_KIND:-$cpu}"
    exec qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu "$bin" "$@" ;;
  28)
    cpu="${EDGESEG_QEMU_CPU:-cortex-a15}"
    export TRACT_CPU_ARM32_NEON="${TRACT_CPU_ARM32_NEON:-true}"
    exec qemu-arm -cpu "$cpu" -L /usr/arm-linux-gnueabihf "$bin" "$@" ;;
  *)
    echo "qemu-user.sh: $bin is not an aarch64 or arm ELF (e_machine 0x$machine)" >&2
    exit 126 ;;
esac
