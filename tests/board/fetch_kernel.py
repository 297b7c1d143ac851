#!/usr/bin/env python3
"""Resolve and download what the emulated board boots: Debian's current arm64 kernel
(image + modules) and a static busybox, as .deb files cached in a directory.

    python3 tests/board/fetch_kernel.py --cache target/board/cache [--suite sid]

Prints one JSON object: {"kernel_debs": [...], "busybox_deb": ..., "version": ...}.
The kernel is followed from the `linux-image-arm64` meta-package through its Depends,
so the newest kernel of the suite is used (gpio-sim is built only in Debian's newest
kernels; run.sh falls back to the virt board's PL061 when a kernel lacks it). Newer
Debian kernels are split into linux-binary / linux-modules / linux-base packages; older
ones ship everything in linux-image-VERSION-arm64: both layouts are handled.

Downloads are verified against the index's SHA256 and kept by file name, so a second
run downloads only the index (and nothing when --offline is given and the cache is full).
"""

import argparse
import hashlib
import json
import lzma
import re
import sys
import urllib.request
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"


def parse_packages(text: str) -> dict:
    """Package name -> fields of its newest stanza."""
    pkgs = {}
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ": " in line:
                k, v = line.split(": ", 1)
                fields[k] = v
        if "Package" in fields:
            pkgs[fields["Package"]] = fields
    return pkgs


def depends(fields: dict) -> list[str]:
    """Names in Depends (first alternative of each), without versions."""
    out = []
    for dep in fields.get("Depends", "").split(","):
        name = dep.split("|")[0].strip().split(" ")[0]
        if name:
            out.append(name)
    return out


def kernel_packages(pkgs: dict, meta: str) -> list[str]:
    """The meta-package's kernel image and what it depends on that holds files we need."""
    if meta not in pkgs:
        raise SystemExit(f"{meta} is not in the index")
    wanted, todo, seen = [], [meta], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in pkgs:
            continue
        seen.add(name)
        if re.match(r"linux-(image|binary|modules|base)-\d", name) and not name.endswith("-dbg"):
            wanted.append(name)
        if name == meta or name.startswith("linux-image-"):
            todo.extend(depends(pkgs[name]))
    if not any(n.startswith(("linux-image-", "linux-binary-")) for n in wanted):
        raise SystemExit(f"{meta}: no kernel image package found through Depends")
    return sorted(wanted)


def fetch(url: str, dest: Path, sha256: str | None) -> Path:
    if dest.exists() and (sha256 is None or hashlib.sha256(dest.read_bytes()).hexdigest() == sha256):
        return dest
    tmp = dest.with_suffix(dest.suffix + ".part")
    print(f"downloading {url}", file=sys.stderr, flush=True)
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
        while chunk := r.read(1 << 20):
            f.write(chunk)
    if sha256 and hashlib.sha256(tmp.read_bytes()).hexdigest() != sha256:
        tmp.unlink()
        raise SystemExit(f"{url}: SHA256 mismatch (mirror changed during the run?); run again")
    tmp.rename(dest)
    return dest


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--suite", default="sid")
    p.add_argument("--mirror", default=MIRROR)
    p.add_argument("--meta", default="linux-image-arm64", help="kernel meta-package to follow")
    p.add_argument("--offline", action="store_true", help="use the cached index and .debs only")
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    index = args.cache / f"Packages-{args.suite}-arm64.xz"
    if not args.offline:
        fetch(f"{args.mirror}/dists/{args.suite}/main/binary-arm64/Packages.xz", index.with_suffix(".new"), None)
        index.with_suffix(".new").replace(index)
    if not index.exists():
        raise SystemExit(f"{index} missing and --offline given")
    pkgs = parse_packages(lzma.decompress(index.read_bytes()).decode())

    def get(name: str) -> str:
        fields = pkgs[name]
        dest = args.cache / Path(fields["Filename"]).name
        if args.offline:
            if not dest.exists():
                raise SystemExit(f"{dest} not cached and --offline given")
            return str(dest)
        return str(fetch(f"{args.mirror}/{fields['Filename']}", dest, fields.get("SHA256")))

    names = kernel_packages(pkgs, args.meta)
    result = {
        "suite": args.suite,
        "version": pkgs[args.meta]["Version"],
        "kernel_packages": names,
        "kernel_debs": [get(n) for n in names],
        "busybox_deb": get("busybox-static"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
