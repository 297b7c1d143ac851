"""Python environments for the reference runtimes under qemu-user, built once in the cache.

aarch64: Debian 12's arm64 CPython 3.11 (`apt-get download` + `dpkg -x` into a prefix that
qemu-aarch64 reads through `-L`) with the aarch64 wheels of numpy, onnxruntime and ncnn
unpacked into one site folder on PYTHONPATH. One prefix per emulated CPU: they share the
extracted packages (symbolic links) and differ in `proc/cpuinfo`, which qemu-user resolves
through the `-L` prefix. onnxruntime crashes at import under qemu-user when /proc/cpuinfo
describes the x86 host, and it and ncnn read the core type from it.

x86-64: the host's own CPython and onnxruntime (run under `qemu-x86_64 -cpu Haswell`), with
the x86-64 ncnn wheel unpacked into its own site folder.

Cache: $EDGESEG_EMU_CACHE, default ~/.cache/edgeseg-emu (see plugin.cache_dir).
"""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

from .plugin import cache_dir

PYTHON_VERSION = "3.11"
ORT_VERSION = "1.32.0"
NUMPY_VERSION = "2.4.6"
NCNN_VERSION = "1.0.20261020"
PNNX_VERSION = "20261020"

# Debian 12 arm64 packages: CPython 3.11 and the shared libraries that it, numpy,
# onnxruntime and ncnn load.
DEBS = [
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libexpat1",
    "zlib1g", "libffi8", "libstdc++6", "libgcc-s1", "libgomp1", "libbz2-1.0", "liblzma5",
    "libcrypt1", "libuuid1", "libssl3",
]

# /proc/cpuinfo as the boards' kernels write it (4 cores each). Pi 4: BCM2711, Cortex-A72
# r0p3, no crypto extension. Pi 5: BCM2712, Cortex-A76 r4p1.
CPUINFO_CORE = {
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3"),
    "cortex-a76": ("fp asimd evtstrm crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
                   "0x4", "0xd0b", "1"),
}


def cpuinfo_text(cpu, cores=4):
    if cpu not in CPUINFO_CORE:
        sys.exit(f"no /proc/cpuinfo known for -cpu {cpu} (known: {', '.join(CPUINFO_CORE)})")
    features, variant, part, revision = CPUINFO_CORE[cpu]
    blocks = []
    for i in range(cores):
        blocks.append(
            f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n")
    return "\n".join(blocks) + "\n"


def _log(msg):
    print(f"[emu setup] {msg}", file=sys.stderr, flush=True)


def _unzip_wheels(wheels, site):
    tmp = site + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            for info in z.infolist():
                path = z.extract(info, tmp)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(path, mode)
    shutil.rmtree(site, ignore_errors=True)
    os.replace(tmp, site)


def _pip_download(dest, packages, platform_args):
    os.makedirs(dest, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "-d", dest, *platform_args, *packages]
    _log(" ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _wheel(dest, name, version):
    found = glob.glob(os.path.join(dest, f"{name}-{version}-*.whl"))
    if not found:
        sys.exit(f"{name} {version} wheel not found in {dest}")
    return found[0]


def aarch64_base():
    """The extracted arm64 CPython and the aarch64 wheels (built once): (base, site)."""
    root = os.path.join(cache_dir(), "aarch64-python")
    base, site = os.path.join(root, "base"), os.path.join(root, "site")
    done = os.path.join(root, f"complete-{ORT_VERSION}-{NUMPY_VERSION}-{NCNN_VERSION}")
    if os.path.exists(done):
        return base, site
    for tool in ("apt-get", "dpkg", "dpkg-deb"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: the aarch64 Python comes from Debian's arm64 packages")
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split()
    debs_dir = os.path.join(root, "debs")
    os.makedirs(debs_dir, exist_ok=True)
    if "arm64" not in foreign and not glob.glob(os.path.join(debs_dir, "*.deb")):
        sys.exit("apt knows no arm64 packages; once, as root: dpkg --add-architecture arm64 && apt-get update")
    missing = [p for p in DEBS if not glob.glob(os.path.join(debs_dir, f"{p}_*_arm64.deb"))]
    if missing:
        _log(f"apt-get download {len(missing)} arm64 packages into {debs_dir}")
        subprocess.run(["apt-get", "download", "-q", *[f"{p}:arm64" for p in missing]], cwd=debs_dir, check=True,
                       stdout=subprocess.DEVNULL)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    for deb in sorted(glob.glob(os.path.join(debs_dir, "*_arm64.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, base], check=True)
    if not os.path.exists(os.path.join(base, "usr", "bin", f"python{PYTHON_VERSION}")):
        sys.exit(f"no usr/bin/python{PYTHON_VERSION} in {base} after extracting the packages")
    wheels = os.path.join(root, "wheels")
    _pip_download(wheels, [f"onnxruntime=={ORT_VERSION}", f"numpy=={NUMPY_VERSION}", f"ncnn=={NCNN_VERSION}"],
                  ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--platform", "manylinux_2_28_aarch64",
                   "--platform", "manylinux_2_27_aarch64", "--platform", "manylinux_2_24_aarch64",
                   "--platform", "manylinux2014_aarch64"])
    _unzip_wheels([_wheel(wheels, n, v) for n, v in
                   (("onnxruntime", ORT_VERSION), ("numpy", NUMPY_VERSION), ("ncnn", NCNN_VERSION))], site)
    open(done, "w").close()
    return base, site


def cpuinfo_prefix(cpu):
    """A `-L` prefix holding only proc/cpuinfo, for static binaries (edgeseg): tract reads
    the Features line from it, as it would on the board."""
    prefix = os.path.join(cache_dir(), "aarch64-cpuinfo", cpu)
    os.makedirs(os.path.join(prefix, "proc"), exist_ok=True)
    _write_cpuinfo(os.path.join(prefix, "proc", "cpuinfo"), cpu)
    return prefix


def _write_cpuinfo(path, cpu):
    text = cpuinfo_text(cpu)
    if not os.path.exists(path) or open(path).read() != text:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def aarch64_prefix(cpu):
    """The `-L` prefix for one CPU: links to the shared base and its own proc/cpuinfo."""
    base, _ = aarch64_base()
    prefix = os.path.join(cache_dir(), "aarch64-python", f"prefix-{cpu}")
    os.makedirs(os.path.join(prefix, "proc"), exist_ok=True)
    for entry in os.listdir(base):
        link = os.path.join(prefix, entry)
        if entry != "proc" and not os.path.lexists(link):
            os.symlink(os.path.join(base, entry), link)
    _write_cpuinfo(os.path.join(prefix, "proc", "cpuinfo"), cpu)
    return prefix


def aarch64_python(cpu):
    """(qemu argv prefix before the plugin, python argv, guest environment) for -cpu `cpu`."""
    prefix = aarch64_prefix(cpu)
    _, site = aarch64_base()
    qemu = ["qemu-aarch64", "-cpu", cpu, "-L", prefix]
    python = [os.path.join(prefix, "usr", "bin", f"python{PYTHON_VERSION}"), "-s", "-B"]
    env = {"PYTHONPATH": site, "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
           "LD_LIBRARY_PATH": "/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu"}
    return qemu, python, env


def host_python():
    """The host's CPython executable itself (not a pyenv shim or venv wrapper script)."""
    exe = os.path.realpath(sys.executable)
    with open(exe, "rb") as f:
        if f.read(4) != b"\x7fELF":
            sys.exit(f"{exe} is not an ELF executable; run emu_bench.py with a real CPython")
    return exe


def x86_site():
    """The x86-64 ncnn wheel, unpacked (built once)."""
    root = os.path.join(cache_dir(), "x86_64-python")
    site = os.path.join(root, "site")
    done = os.path.join(root, f"complete-{NCNN_VERSION}")
    if not os.path.exists(done):
        wheels = os.path.join(root, "wheels")
        _pip_download(wheels, [f"ncnn=={NCNN_VERSION}"],
                      ["--python-version", PYTHON_VERSION, "--implementation", "cp",
                       "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_24_x86_64"])
        _unzip_wheels([_wheel(wheels, "ncnn", NCNN_VERSION)], site)
        open(done, "w").close()
    return site


def x86_python(cpu):
    """(qemu argv prefix, python argv, guest environment) for the host CPython under qemu-x86_64."""
    if sys.version_info[:2] != (3, 11):
        sys.exit("the x86-64 ncnn wheel is cp311: run emu_bench.py with CPython 3.11")
    site = x86_site()
    env = {"PYTHONPATH": site, "PYTHONHASHSEED": "0"}
    return ["qemu-x86_64", "-cpu", cpu], [host_python(), "-s", "-B"], env


def pnnx_binary():
    """The pnnx converter (x86-64 host binary from the pnnx wheel; the wheel's Python part needs torch, the binary does not)."""
    root = os.path.join(cache_dir(), "pnnx")
    exe = os.path.join(root, "site", "pnnx", "pnnx")
    if not os.path.exists(exe):
        wheels = os.path.join(root, "wheels")
        _pip_download(wheels, [f"pnnx=={PNNX_VERSION}"], [])
        _unzip_wheels([_wheel(wheels, "pnnx", PNNX_VERSION)], os.path.join(root, "site"))
    os.chmod(exe, 0o755)
    return exe
