"""Build the instruction-counting qemu plugin and pick the emulator for a binary."""
import hashlib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "insn_count.c")


def cache_dir():
    d = os.environ.get("EDGESEG_EMU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeseg-emu")
    os.makedirs(d, exist_ok=True)
    return d


def build_plugin():
    """Compile insn_count.c once per source version; return the .so path."""
    src = open(SOURCE, "rb").read()
    so = os.path.join(cache_dir(), f"insn_count-{hashlib.sha256(src).hexdigest()[:12]}.so")
    if not os.path.exists(so):
        cc = os.environ.get("CC", "cc")
        if not shutil.which(cc):
            sys.exit(f"{cc} not found: the qemu plugin is C (Debian: gcc)")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", so + ".tmp", SOURCE], check=True)
        os.replace(so + ".tmp", so)
    return so


def qemu_for(machine, cpu):
    """The qemu-user command line for an ELF e_machine (0xb7 aarch64, 0x3e x86-64)."""
    exe = {0xB7: "qemu-aarch64", 0x3E: "qemu-x86_64"}.get(machine)
    if exe is None:
        sys.exit(f"no emulator for ELF machine {machine:#x}")
    if not shutil.which(exe):
        sys.exit(f"{exe} not found (Debian: qemu-user)")
    cmd = [exe, "-cpu", cpu]
    if machine == 0xB7 and os.path.isdir("/usr/aarch64-linux-gnu"):
        cmd += ["-L", "/usr/aarch64-linux-gnu"]
    return cmd
