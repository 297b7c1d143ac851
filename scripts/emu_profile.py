#!/usr/bin/env python3
"""Where an emulated program spends its instructions: a per-function profile from qemu-user.

Runs a static executable under qemu-user with the instruction-counting TCG plugin
(scripts/emu/insn_count.c) in profile mode, then adds each translated block's executed
instructions to the function that holds it (symbols from `nm`). Instructions are a proxy
for time on the emulated core, not a time.

  python3 scripts/emu_profile.py --cpu cortex-a72 -- target/aarch64-unknown-linux-musl/release/edgeseg \\
      bench --model models/yolov8n_seg_defects_int8.onnx --runs 1 --warmup 0
  python3 scripts/emu_profile.py --cpu Haswell -- target/release/edgeseg bench ...

`--top N` rows (default 40); `--json FILE` writes every function's counts.
"""
import argparse
import bisect
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu.plugin import build_plugin, qemu_for  # noqa: E402


def elf_info(path):
    """(machine, entry, is_pie) from the ELF header."""
    with open(path, "rb") as f:
        h = f.read(64)
    if h[:4] != b"\x7fELF" or h[4] != 2:
        sys.exit(f"{path}: not a 64-bit ELF file")
    e_type = int.from_bytes(h[16:18], "little")
    machine = int.from_bytes(h[18:20], "little")
    entry = int.from_bytes(h[24:32], "little")
    return machine, entry, e_type == 3


def symbols(path, machine):
    nm = "aarch64-linux-gnu-nm" if machine == 0xB7 else "nm"
    if not shutil.which(nm):
        sys.exit(f"{nm} not found (Debian: binutils-aarch64-linux-gnu / binutils)")
    out = subprocess.run([nm, "-C", "--defined-only", "-n", path], check=True, capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return syms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="cortex-a72", help="qemu -cpu: cortex-a72, cortex-a76, Haswell, ...")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--json", help="write every function's counts here")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the guest (repeatable)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command to run after --")
    binary = cmd[0]
    machine, entry, pie = elf_info(binary)
    plugin = build_plugin()
    with tempfile.TemporaryDirectory() as tmp:
        counts, prof = os.path.join(tmp, "counts.json"), os.path.join(tmp, "profile.txt")
        qemu = qemu_for(machine, a.cpu)
        env = dict(os.environ)
        for kv in a.env:
            k, _, v = kv.partition("=")
            env[k] = v
        if machine == 0xB7:
            env.setdefault("TRACT_CPU_AARCH64_KIND", a.cpu)
        full = qemu + ["-plugin", f"{plugin},out={counts},profile={prof}", *cmd]
        r = subprocess.run(full, env=env)
        if r.returncode != 0:
            sys.exit(f"the emulated command failed (exit {r.returncode})")
        total = json.load(open(counts))
        lines = open(prof).read().splitlines()
    first = int(lines[0].split()[1], 16)
    base = first - entry if pie else 0
    syms = symbols(binary, machine)
    addrs = [s[0] for s in syms]
    by_fn = {}
    for line in lines[1:]:
        va, n, simd, mem = line.split()
        va = int(va, 16) - base
        i = bisect.bisect_right(addrs, va) - 1
        name = syms[i][1] if i >= 0 else "?"
        e = by_fn.setdefault(name, [0, 0, 0])
        e[0] += int(n)
        e[1] += int(simd)
        e[2] += int(mem)
    rows = sorted(by_fn.items(), key=lambda kv: -kv[1][0])
    t = total["instructions"]
    print(f"{t / 1e6:.1f} M instructions ({total['simd'] / max(t, 1):.0%} SIMD/FP, {total['mem'] / max(t, 1):.0%} load/store), {total['vcpus']} vCPUs, -cpu {a.cpu}")
    print(f"{'M insns':>9} {'share':>6} {'simd':>5} {'mem':>5}  function")
    for name, (n, simd, mem) in rows[: a.top]:
        print(f"{n / 1e6:9.2f} {n / t:6.1%} {simd / max(n, 1):5.0%} {mem / max(n, 1):5.0%}  {name[:150]}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"total": total, "functions": [{"name": k, "instructions": v[0], "simd": v[1], "mem": v[2]} for k, v in rows]}, f, indent=1)


if __name__ == "__main__":
    main()
