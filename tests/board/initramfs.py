#!/usr/bin/env python3
"""Build the emulated board's initramfs: busybox, the kernel modules edgeseg needs (in
dependency order), a static edgeseg, a model and boards/qemu-virt.toml.

    python3 tests/board/initramfs.py --debs a.deb b.deb ... --busybox busybox.deb \
        --edgeseg target/aarch64-unknown-linux-musl/debug/edgeseg --model models/X.onnx \
        --out target/board/initrd.gz --kernel-out target/board/vmlinuz

Modules are resolved with the host's depmod/modprobe against the extracted tree
(`depmod -b`, `modprobe -d ... --show-depends`) and stored decompressed, so the guest's
busybox insmod needs no xz support. The archive is written directly in the kernel's
`newc` cpio format, including /dev/console, so no root rights (mknod) are needed.
"""

import argparse
import gzip
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# vivid: one instance with only a video capture node (/dev/video0), no radio/SDR/VBI/touch.
MODULES = [("vivid", "n_devs=1 node_types=0x1"), ("gpio-sim", "")]


class Cpio:
    """Minimal writer for the `newc` (070701) format the kernel unpacks."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields) + name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data: bytes, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    if path.suffix == ".gz":
        return gzip.decompress(data)
    return data


def check_static_aarch64(path: Path) -> None:
    """The guest has no dynamic loader: refuse anything but a static aarch64 ELF."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or int.from_bytes(data[18:20], "little") != 0xB7:
        raise SystemExit(f"{path} is not an aarch64 ELF; build with --target aarch64-unknown-linux-musl")
    phoff = int.from_bytes(data[32:40], "little")
    phentsize, phnum = int.from_bytes(data[54:56], "little"), int.from_bytes(data[56:58], "little")
    for i in range(phnum):
        if int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little") == 3:  # PT_INTERP
            raise SystemExit(f"{path} is dynamically linked; build with --target aarch64-unknown-linux-musl "
                             "(static through .cargo/config.toml)")


def stripped(binary: Path, tmp: Path) -> bytes:
    """The binary without debug info (a debug build is mostly DWARF; the guest keeps the
    whole initramfs in RAM). Unstripped when the cross binutils are missing."""
    strip = shutil.which("aarch64-linux-gnu-strip")
    if strip is None:
        return binary.read_bytes()
    out = tmp / "edgeseg.stripped"
    subprocess.run([strip, "-o", str(out), str(binary)], check=True)
    return out.read_bytes()


def resolve_modules(base: Path, version: str) -> list[tuple[Path, str]]:
    """(module file, arguments) in load order; built-in modules are skipped."""
    subprocess.run(["depmod", "-b", str(base), version], check=True)
    order, seen = [], set()
    for name, args in MODULES:
        out = subprocess.run(["modprobe", "-d", str(base), "-S", version, "--show-depends", name],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"kernel {version} has no module {name}: {out.stderr.strip()}")
        for line in out.stdout.splitlines():
            parts = line.split()
            if parts[:1] != ["insmod"] or parts[1] in seen:
                continue
            seen.add(parts[1])
            mod = Path(parts[1])
            order.append((mod, args if mod.name.split(".")[0].replace("_", "-") == name else ""))
    return order


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debs", nargs="+", type=Path, required=True)
    p.add_argument("--busybox", type=Path, required=True)
    p.add_argument("--edgeseg", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--board", type=Path, default=ROOT / "boards/qemu-virt.toml")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--kernel-out", type=Path, required=True)
    args = p.parse_args()

    check_static_aarch64(args.edgeseg)
    with tempfile.TemporaryDirectory(prefix="edgeseg-board-") as tmp:
        tree = Path(tmp)
        for deb in args.debs + [args.busybox]:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        # Newer Debian kernels install under /usr/lib/modules (merged /usr), older under /lib.
        base = tree / "usr" if (tree / "usr/lib/modules").is_dir() else tree
        versions = sorted(d.name for d in (base / "lib/modules").iterdir())
        if len(versions) != 1:
            raise SystemExit(f"expected one kernel in the packages, found {versions}")
        version = versions[0]
        kernel = next((k for k in [base / f"lib/modules/{version}/vmlinuz", tree / f"boot/vmlinuz-{version}"] if k.exists()), None)
        if kernel is None:
            raise SystemExit(f"no vmlinuz for {version} in the packages")
        args.kernel_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kernel, args.kernel_out)

        cpio = Cpio()
        for d in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "edgeseg", "edgeseg/boards", "edgeseg/models"]:
            cpio.dir(d)
        cpio.chardev("dev/console", 5, 1)
        busybox = next(b for b in [tree / "usr/bin/busybox", tree / "bin/busybox"] if b.exists())
        cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
        cpio.file("init", (ROOT / "tests/board/init").read_bytes(), 0o755)
        load_order = []
        for mod, margs in resolve_modules(base, version):
            name = mod.name.split(".ko")[0] + ".ko"
            cpio.file(f"lib/modules/{name}", decompress(mod))
            load_order.append(f"{name} {margs}".strip())
        cpio.file("lib/modules/load.order", ("\n".join(load_order) + "\n").encode())
        cpio.file("edgeseg/edgeseg", stripped(args.edgeseg, tree), 0o755)
        board = args.board.read_text()
        model_rel = "../models/" + args.model.name
        cpio.file("edgeseg/boards/qemu-virt.toml", board.encode())
        cpio.file(f"edgeseg/models/{args.model.name}", args.model.read_bytes())
        if model_rel not in board:
            raise SystemExit(f"{args.board} does not name {model_rel}: the guest holds only that model")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(gzip.compress(cpio.finish(), compresslevel=1))
        print(f"kernel {version}; modules: {', '.join(load_order)}; initramfs {args.out.stat().st_size >> 20} MiB",
              file=sys.stderr)


if __name__ == "__main__":
    main()
