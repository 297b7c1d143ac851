#!/usr/bin/env python3
"""Emulated-CPU benchmark: executed guest instructions per inference under qemu-user.

For each model, CPU (qemu -cpu) and thread count, counts the instructions a process executes
(scripts/emu/insn_count.c, a qemu TCG plugin: total, SIMD/FP, load/store; every guest
thread, spinning included) for edgeseg and the reference runtimes on the same model and
input:

  edgeseg      `edgeseg bench --model M --runs N --warmup 0 --threads T` (aarch64: the static
               musl build with TRACT_CPU_AARCH64_KIND=CPU; Haswell: the x86-64 release build)
  onnxruntime  1.32, scripts/emu/run_ort.py (bench_ort.py's session options and input);
               aarch64 wheel in Debian's arm64 CPython 3.11 under qemu-aarch64, or the host's
               CPython and onnxruntime under qemu-x86_64
  ncnn         the same ONNX converted by pnnx (fp32 weights), scripts/emu/run_ncnn.py:
               "fp32" (fp16/bf16 off) and "default" (ncnn's defaults: fp16 on ARMv8.2)
  litert       hook only: needs models/NAME.tflite, which do not exist yet

Instructions per inference = (count of a process doing 3 runs - count of one doing 1 run) / 2:
start-up, model load and first-run allocations cancel. Instructions are a proxy for time on
the emulated core, not a time: qemu's TCG counts what the guest executes, not how long the
real core takes (no caches, no pipeline, no memory latency).

    python3 scripts/emu_bench.py                               # everything (hours)
    python3 scripts/emu_bench.py --models yolov8n_seg_defects_int8 --cpus cortex-a76 --threads 1
    python3 scripts/emu_bench.py --edgeseg-aarch64 BIN --edgeseg-x86 BIN --binaries-commit abc1234 \\
        --resume --readme models/README.md

The JSON (--output, default models/emu_bench.json) keeps every measurement and the commands
that made it; a new run merges into it (--fresh starts over; --resume skips measurements
whose binary, model and runtime are unchanged). --table-only reprints the table from it.
"""
import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from emu import guest  # noqa: E402
from emu.plugin import build_plugin, cache_dir  # noqa: E402

MODELS = ["unet_defects", "unet_defects_int8", "deeplabv3plus_defects", "deeplabv3plus_defects_int8",
          "yolov8n_seg_defects", "yolov8n_seg_defects_int8"]
CPUS = ["cortex-a72", "cortex-a76", "Haswell"]
ARM_CPUS = {"cortex-a72", "cortex-a76"}
X86_CPUS = {"Haswell"}
RUNTIMES = ["edgeseg", "onnxruntime", "ncnn", "litert"]
DEFAULT_RUNTIMES = ["edgeseg", "onnxruntime", "ncnn"]
THREADS = [1, 4]
NCNN_MODES = ["fp32", "default"]
RUNS = (1, 3)
# Relative output tolerance (max |ncnn - onnxruntime| / max |onnxruntime|) for a pnnx
# conversion to count as the same network in float.
CONVERT_TOLERANCE = 1e-3
MARK_BEGIN, MARK_END = "<!-- emu-bench -->", "<!-- /emu-bench -->"
PRETTY_CPU = {"cortex-a72": "Cortex-A72 (Pi 4)", "cortex-a76": "Cortex-A76 (Pi 5)", "Haswell": "x86 Haswell (AVX2)"}

_print_lock = threading.Lock()


def log(msg):
    with _print_lock:
        print(msg, file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_int8(model):
    return model.endswith("_int8")


def model_path(name):
    if os.sep in name or name.endswith(".onnx"):
        return os.path.abspath(name)
    return os.path.join(ROOT, "models", f"{name}.onnx")


def model_name(path):
    return os.path.basename(path)[: -len(".onnx")] if path.endswith(".onnx") else os.path.basename(path)


def shell_line(argv, env=None):
    pre = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return (pre + " " if pre else "") + " ".join(shlex.quote(a) for a in argv)


# --- binaries -------------------------------------------------------------------------

def elf_machine(path):
    with open(path, "rb") as f:
        h = f.read(20)
    if h[:4] != b"\x7fELF":
        sys.exit(f"{path}: not an ELF executable")
    return int.from_bytes(h[18:20], "little")


def build_edgeseg(target):
    cmd = ["cargo", "build", "--release", "--bin", "edgeseg"] + (["--target", target] if target else [])
    log(f"building: {' '.join(cmd)} (in {ROOT})")
    subprocess.run(cmd, cwd=ROOT, check=True)
    tdir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(tdir, target, "release", "edgeseg") if target else os.path.join(tdir, "release", "edgeseg")


def git_commit():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def qemu_version():
    out = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"


# --- inputs, references, conversions (host) ---------------------------------------------

def ort_inputs_outputs(path):
    import onnxruntime as ort
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return ([(i.name, i.shape) for i in s.get_inputs()], [(o.name, o.shape) for o in s.get_outputs()])


def model_input(path, sha):
    """bench_ort.py's input for the model (mid-gray frame, normalized), saved as .npy."""
    import numpy as np
    from bench_ort import input_config
    from dataset import normalize
    out = os.path.join(cache_dir(), "inputs", f"{model_name(path)}-{sha[:12]}.npy")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cfg = input_config(__import__("pathlib").Path(path))
        w, h = cfg["size"]
        img = np.full((h, w) if cfg["color"] == "gray" else (h, w, 3), 128, np.uint8)
        x = normalize(img[None], cfg["mean"], cfg["std"])
        np.save(out + ".tmp.npy", x)
        os.replace(out + ".tmp.npy", out)
    return out


def host_reference(path, sha, x_npy):
    """onnxruntime's outputs on the host (native, 1 thread), for the output checks."""
    out = os.path.join(cache_dir(), "reference", f"{model_name(path)}-{sha[:12]}.npz")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "emu", "run_ort.py"), "--model", path, "--input", x_npy,
                        "--threads", "1", "--runs", "1", "--save-outputs", out + ".tmp.npz"], check=True,
                       stdout=subprocess.DEVNULL)
        os.replace(out + ".tmp.npz", out)
    return out


def compare_outputs(got_npz, ref_npz, names=None):
    """max |got - ref| and that over max |ref|, over every output (matched by order)."""
    import numpy as np
    got, ref = np.load(got_npz), np.load(ref_npz)
    gk, rk = list(got.keys()), list(ref.keys())
    if len(gk) != len(rk):
        return {"error": f"{len(gk)} outputs against onnxruntime's {len(rk)}"}
    res = {"outputs": []}
    worst = 0.0
    for g, r in zip(gk, rk):
        a, b = got[g].astype(np.float64), ref[r].astype(np.float64)
        if a.shape != b.shape:
            return {"error": f"output {g} has shape {list(a.shape)}, onnxruntime's {r} {list(b.shape)}"}
        d = float(np.abs(a - b).max())
        scale = float(np.abs(b).max()) or 1.0
        res["outputs"].append({"name": r, "max_abs_diff": d, "max_abs_ref": scale, "rel": d / scale})
        worst = max(worst, d / scale)
    res["max_rel"] = worst
    return res


def ncnn_convert(path, sha, x_npy, ref_npz):
    """pnnx's ncnn files for a float ONNX model, with the host check against onnxruntime.

    Returns {"ok": bool, ...}; never raises for a model that does not convert."""
    name = model_name(path)
    work = os.path.join(cache_dir(), "ncnn", f"{name}-{sha[:12]}")
    status_file = os.path.join(work, "status.json")
    if os.path.exists(status_file):
        return json.load(open(status_file))
    os.makedirs(work, exist_ok=True)
    inputs, outputs = ort_inputs_outputs(path)
    shape = ",".join(str(d) for d in inputs[0][1])
    local = os.path.join(work, f"{name}.onnx")
    if not os.path.exists(local):
        shutil.copyfile(path, local)
    pnnx = guest.pnnx_binary()
    cmd = [pnnx, f"{name}.onnx", f"inputshape=[{shape}]", "fp16=0"]
    status = {"ok": False, "pnnx": f"pnnx {guest.PNNX_VERSION}", "command": shell_line(cmd), "workdir": work}
    log(f"pnnx: converting {name} ({shell_line(cmd)})")
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    open(os.path.join(work, "pnnx.log"), "w").write(r.stdout + r.stderr)
    param, binf = os.path.join(work, f"{name}.ncnn.param"), os.path.join(work, f"{name}.ncnn.bin")
    if r.returncode != 0 or not os.path.exists(param) or not os.path.exists(binf):
        status["error"] = f"pnnx exited {r.returncode}; last lines: " + " | ".join((r.stdout + r.stderr).strip().splitlines()[-3:])
    else:
        text = open(param).read()
        outs = sorted(set(re.findall(r"\bout(\d+)\b", text)), key=int)
        status.update(param=param, bin=binf, input_name="in0", outputs=[f"out{i}" for i in outs],
                      layers=text.splitlines()[1].split()[0] if len(text.splitlines()) > 1 else None)
        if "in0" not in text or len(outs) != len(outputs):
            status["error"] = f"ncnn graph has outputs {status['outputs']}, the ONNX model {[o[0] for o in outputs]}"
        else:
            # Host check (native x86-64 ncnn, fp32 settings, 1 thread) against onnxruntime.
            got = os.path.join(work, "host_fp32_outputs.npz")
            env = dict(os.environ, PYTHONPATH=guest.x86_site())
            cmd = [sys.executable, os.path.join(HERE, "emu", "run_ncnn.py"), "--param", param, "--bin", binf,
                   "--input", x_npy, "--outputs", ",".join(status["outputs"]), "--threads", "1", "--runs", "1",
                   "--mode", "fp32", "--save-outputs", got]
            rr = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if rr.returncode != 0:
                status["error"] = f"ncnn could not run the converted model: {rr.stderr.strip()[-300:]}"
            else:
                check = compare_outputs(got, ref_npz)
                status["host_check"] = check
                # The mid-gray frame is uniform: check a noise input too.
                import numpy as np
                x = np.load(x_npy)
                noise = os.path.join(work, "noise_input.npy")
                np.save(noise, np.random.default_rng(0).normal(0, 1, x.shape).astype(np.float32))
                noise_ref, noise_got = os.path.join(work, "noise_ort.npz"), os.path.join(work, "noise_ncnn.npz")
                subprocess.run([sys.executable, os.path.join(HERE, "emu", "run_ort.py"), "--model", path, "--input",
                                noise, "--threads", "1", "--runs", "1", "--save-outputs", noise_ref], check=True,
                               stdout=subprocess.DEVNULL)
                cmd[cmd.index(x_npy)] = noise
                cmd[-1] = noise_got
                rn = subprocess.run(cmd, env=env, capture_output=True, text=True)
                check2 = compare_outputs(noise_got, noise_ref) if rn.returncode == 0 else {"error": rn.stderr[-300:]}
                status["host_check_noise"] = check2
                if "error" in check or "error" in check2:
                    status["error"] = check.get("error") or check2.get("error")
                elif max(check["max_rel"], check2["max_rel"]) > CONVERT_TOLERANCE:
                    status["error"] = (f"ncnn's outputs differ from onnxruntime's: max |diff| / max |ref| = "
                                       f"{max(check['max_rel'], check2['max_rel']):.2e} > {CONVERT_TOLERANCE:.0e}")
                else:
                    status["ok"] = True
    json.dump(status, open(status_file, "w"), indent=1)
    return status


# --- measurements -------------------------------------------------------------------------

class Proc:
    """One emulated process: its command line, and after running, its counts."""

    def __init__(self, key, runs, argv, env, weight, save_outputs=None):
        self.key, self.runs, self.argv, self.env, self.weight = key, runs, argv, env, weight
        self.save_outputs = save_outputs
        self.result = None


def clean_env(extra):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.path.expanduser("~"), "LANG": "C.UTF-8",
           "OPENBLAS_NUM_THREADS": "1"}
    env.update(extra)
    return env


def plan_measurement(m, plugin, tmp):
    """The two processes (1 and 3 runs) of one measurement dict."""
    procs = []
    for runs in RUNS:
        counts = os.path.join(tmp, f"{m['id']}.runs{runs}.json")
        # Both processes save their outputs, so that the saving (numpy's zip writer, imported
        # and compiled in the guest) cancels like the rest of the start-up.
        save = os.path.join(tmp, f"{m['id']}.runs{runs}.outputs.npz") if m["runtime"] != "edgeseg" else None
        plug = ["-plugin", f"{plugin},out={counts}"]
        if m["runtime"] == "edgeseg":
            binary = m["binary"]
            if m["cpu"] in ARM_CPUS:
                # The board's /proc/cpuinfo (through -L) and the core type for tract, which
                # cannot read it from the host's (scripts/qemu-user.sh).
                qemu = ["qemu-aarch64", "-cpu", m["cpu"], "-L", guest.cpuinfo_prefix(m["cpu"])]
                env = {"TRACT_CPU_AARCH64_KIND": m["cpu"]}
            else:
                qemu = ["qemu-x86_64", "-cpu", m["cpu"]]
                env = {}
            guest_argv = [binary, "bench", "--model", m["model_path"], "--runs", str(runs), "--warmup", "0",
                          "--threads", str(m["threads"]), "--json"]
        else:
            if m["cpu"] in ARM_CPUS:
                qemu, python, env = guest.aarch64_python(m["cpu"])
                # The guest's library path, for the arm64 loader only (not the host qemu's).
                ld = env.pop("LD_LIBRARY_PATH")
                qemu = qemu + ["-E", f"LD_LIBRARY_PATH={ld}"]
            else:
                qemu, python, env = guest.x86_python(m["cpu"])
            if m["runtime"] == "onnxruntime":
                guest_argv = python + [os.path.join(HERE, "emu", "run_ort.py"), "--model", m["model_path"],
                                       "--input", m["input"], "--threads", str(m["threads"]), "--runs", str(runs)]
            else:
                guest_argv = python + [os.path.join(HERE, "emu", "run_ncnn.py"), "--param", m["ncnn_param"],
                                       "--bin", m["ncnn_bin"], "--input", m["input"], "--outputs", m["ncnn_outputs"],
                                       "--threads", str(m["threads"]), "--runs", str(runs), "--mode", m["mode"]]
            if save:
                guest_argv += ["--save-outputs", save]
        argv = qemu + plug + guest_argv
        weight = m["weight"] * (runs + 1)
        p = Proc(m["id"], runs, argv, clean_env(env), weight, save)
        p.counts_path = counts
        p.command = shell_line(qemu + ["-plugin", f"{plugin},out=COUNTS.json"] + guest_argv, env)
        procs.append(p)
    return procs


def run_proc(p, timeout):
    t = time.time()
    try:
        r = subprocess.run(p.argv, env=p.env, capture_output=True, text=True, timeout=timeout)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = "timeout", "", f"killed after {timeout} s"
    wall = time.time() - t
    res = {"runs": p.runs, "exit": rc, "wall_s": round(wall, 1), "command": p.command}
    if rc == 0 and os.path.exists(p.counts_path):
        res["counts"] = json.load(open(p.counts_path))
        lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
        if lines:
            try:
                res["report"] = json.loads(lines[-1])
            except json.JSONDecodeError:
                pass
    else:
        res["error"] = (err or out).strip()[-600:]
    p.result = res
    return p


def finish_measurement(m, procs, ref_npz):
    by_runs = {p.runs: p.result for p in procs}
    m["processes"] = [by_runs[r] for r in RUNS]
    bad = [r for r in by_runs.values() if "counts" not in r]
    if bad:
        m["status"] = "failed"
        m["error"] = f"{bad[0]['runs']}-run process: exit {bad[0]['exit']}: {bad[0].get('error', '')}"
        return m
    c1, c3 = by_runs[1]["counts"], by_runs[3]["counts"]
    span = RUNS[1] - RUNS[0]
    keys = [k for k in ("instructions", "simd", "mem", "simd_mem", "dot", "fp16", "ymm", "zmm") if k in c1 and k in c3]
    per = {k: (c3[k] - c1[k]) / span for k in keys}
    m["per_inference"] = per
    m["vcpus"] = max(c1["vcpus"], c3["vcpus"])
    if per["instructions"] <= 0:
        m["status"] = "failed"
        m["error"] = "the 3-run process did not execute more instructions than the 1-run one"
        return m
    # Start-up must be the same in both processes for the difference to mean anything: a
    # share outside [0, 1] shows it was not (e.g. different work outside the runs).
    odd = [k for k in keys[1:] if not -0.001 * per["instructions"] <= per[k] <= 1.001 * per["instructions"]]
    if odd:
        m["warning"] = f"per-inference {', '.join(odd)} outside [0, total]: start-up differed between the processes"
    m["status"] = "ok"
    m["date"] = datetime.date.today().isoformat()
    save = next((p.save_outputs for p in procs if p.save_outputs and p.runs == RUNS[-1]), None)
    if save and os.path.exists(save) and ref_npz:
        m["output_check"] = compare_outputs(save, ref_npz)
    rep = by_runs[1].get("report") or {}
    for k in ("runtime", "options", "cpu_support", "threads"):
        if k in rep:
            m.setdefault("reported", {})[k] = rep[k]
    return m


# --- table ----------------------------------------------------------------------------------

def fmt_m(v):
    if v is None:
        return ""
    m = v / 1e6
    return f"{m:.0f}" if m >= 100 else f"{m:.1f}"


def fmt_ratio(a, b):
    if a is None or b is None or not b:
        return ""
    return f"{a / b:.2f}"


def index(entries):
    ix = {}
    for e in entries:
        if e.get("status") == "ok":
            ix[(e["runtime"], e.get("mode", ""), e["model"], e["cpu"], e["threads"])] = e["per_inference"]
    return ix


def tables(doc):
    entries = doc["measurements"]
    ix = index(entries)
    def get(rt, mode, model, cpu, t, k="instructions"):
        v = ix.get((rt, mode, model, cpu, t))
        return v[k] if v else None
    rows = sorted({(e["model"], e["cpu"], e["threads"]) for e in entries},
                  key=lambda r: (MODELS.index(r[0]) if r[0] in MODELS else 99, r[0],
                                 CPUS.index(r[1]) if r[1] in CPUS else 9, r[2]))
    failed = {(e["runtime"], e.get("mode", ""), e["model"], e["cpu"], e["threads"]): e for e in entries
              if e.get("status") != "ok"}
    conv = doc.get("ncnn_conversions", {})

    def cell(rt, mode, model, cpu, t):
        v = get(rt, mode, model, cpu, t)
        if v is not None:
            return fmt_m(v)
        if rt == "ncnn" and is_int8(model):
            return "—"
        f = failed.get((rt, mode, model, cpu, t))
        if f:
            return {"failed": "failed", "not converted": "no conversion"}.get(f.get("status"), "n/a")
        return ""

    head = ("| model | CPU | threads | edgeseg | onnxruntime | ncnn fp32 | ncnn default | edgeseg / ORT | "
            "edgeseg / ncnn fp32 | edgeseg int8 / float |")
    out = [head, "|" + "---|" * 10]
    for model, cpu, t in rows:
        e = get("edgeseg", "", model, cpu, t)
        o = get("onnxruntime", "", model, cpu, t)
        n = get("ncnn", "fp32", model, cpu, t)
        own = ""
        if is_int8(model):
            own = fmt_ratio(e, get("edgeseg", "", model[: -len("_int8")], cpu, t))
        out.append(f"| `{model}` | {cpu} | {t} | {cell('edgeseg', '', model, cpu, t)} | "
                   f"{cell('onnxruntime', '', model, cpu, t)} | {cell('ncnn', 'fp32', model, cpu, t)} | "
                   f"{cell('ncnn', 'default', model, cpu, t)} | {fmt_ratio(e, o)} | {fmt_ratio(e, n)} | {own} |")
    split = ["| model | CPU | threads | edgeseg SIMD / ld-st | ORT SIMD / ld-st | ncnn fp32 SIMD / ld-st | "
             "ncnn default SIMD / ld-st |", "|" + "---|" * 7]
    for model, cpu, t in rows:
        cells = []
        for rt, mode in (("edgeseg", ""), ("onnxruntime", ""), ("ncnn", "fp32"), ("ncnn", "default")):
            v = ix.get((rt, mode, model, cpu, t))
            if not v:
                cells.append("")
                continue
            c = f"{v['simd'] / v['instructions']:.0%} / {v['mem'] / v['instructions']:.0%}"
            marks = [f"{k} {v[k] / v['instructions']:.0%}" if v[k] >= 0.01 * v["instructions"] else
                     f"{k} {v[k] / v['instructions']:.1%}" for k in ("dot", "fp16", "ymm", "zmm")
                     if v.get(k, 0) > 0.0005 * v["instructions"]]
            cells.append(c + (" (" + ", ".join(marks) + ")" if marks else ""))
        split.append(f"| `{model}` | {cpu} | {t} | " + " | ".join(cells) + " |")
    notes = []
    for name, st in sorted(conv.items()):
        if st.get("ok"):
            hc = st.get("host_check", {})
            hn = st.get("host_check_noise", {})
            notes.append(f"- `{name}`: pnnx converted it; ncnn fp32 on the host (x86-64, native) matches onnxruntime: "
                         f"max |diff| / max |output| {hc.get('max_rel', float('nan')):.1e} on the gray frame, "
                         f"{hn.get('max_rel', float('nan')):.1e} on a Gaussian-noise input.")
        else:
            notes.append(f"- `{name}`: **no ncnn figures**: {st.get('error', 'conversion failed')}")
    for e in entries:
        if e.get("status") not in ("ok", None) and e["runtime"] != "litert":
            notes.append(f"- {e['runtime']} {e.get('mode', '')} `{e['model']}` {e['cpu']} {e['threads']} thr: "
                         f"{e['status']}: {e.get('error', '')[:200]}")
    lit = [e for e in entries if e["runtime"] == "litert"]
    if lit:
        notes.append(f"- LiteRT (XNNPACK): not measured: {lit[0].get('error', '')}")
    return "\n".join(out), "\n".join(split), "\n".join(notes)


# Issue 23's targets at 1 thread: (label, numerator, denominator, CPU, limit); numerator and
# denominator are (runtime, mode, which model: "int8" or "float").
TARGETS = [
    ("A72 int8 / ORT int8", ("edgeseg", "", "int8"), ("onnxruntime", "", "int8"), "cortex-a72", 0.8),
    ("A76 int8 / ORT int8", ("edgeseg", "", "int8"), ("onnxruntime", "", "int8"), "cortex-a76", 0.8),
    ("A72 int8 / own float", ("edgeseg", "", "int8"), ("edgeseg", "", "float"), "cortex-a72", 0.5),
    ("A76 int8 / own float", ("edgeseg", "", "int8"), ("edgeseg", "", "float"), "cortex-a76", 0.5),
    ("A72 float / ncnn fp32", ("edgeseg", "", "float"), ("ncnn", "fp32", "float"), "cortex-a72", 1.0),
    ("A76 float / ncnn fp32", ("edgeseg", "", "float"), ("ncnn", "fp32", "float"), "cortex-a76", 1.0),
    ("Haswell int8 / ORT int8", ("edgeseg", "", "int8"), ("onnxruntime", "", "int8"), "Haswell", 0.8),
    ("Haswell float / ORT float", ("edgeseg", "", "float"), ("onnxruntime", "", "float"), "Haswell", 1.0),
]


def targets_table(doc):
    ix = index(doc["measurements"])
    bases = sorted({e["model"][: -len("_int8")] if is_int8(e["model"]) else e["model"] for e in doc["measurements"]},
                   key=lambda b: MODELS.index(b) if b in MODELS else 99)
    head = "| model | " + " | ".join(f"{t[0]} (≤ {t[4]})" for t in TARGETS) + " |"
    rows = [head, "|" + "---|" * (len(TARGETS) + 1)]
    any_value = False
    for b in bases:
        cells = []
        for _, num, den, cpu, limit in TARGETS:
            def val(spec):
                rt, mode, which = spec
                v = ix.get((rt, mode, b + ("_int8" if which == "int8" else ""), cpu, 1))
                return v["instructions"] if v else None
            n, d = val(num), val(den)
            if n is None or d is None:
                cells.append("")
                continue
            any_value = True
            r = n / d
            cells.append(f"{r:.2f} " + ("met" if r <= limit else "**short**"))
        rows.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(rows) if any_value else ""


def output_check_notes(doc):
    worst = {}
    for e in doc["measurements"]:
        oc = e.get("output_check")
        if e.get("status") == "ok" and oc and "max_rel" in oc:
            k = (e["runtime"], e.get("mode", ""))
            worst.setdefault(k, []).append((oc["max_rel"], e["model"], e["cpu"], e["threads"]))
    lines = []
    for (rt, mode), v in sorted(worst.items()):
        v.sort()
        lines.append(f"{rt}{' ' + mode if mode else ''}: worst {v[-1][0]:.1e} ({v[-1][1]}, {v[-1][2]}, "
                     f"{v[-1][3]} thr), best {v[0][0]:.1e}")
    return lines


def dates(doc):
    d = sorted({e["date"] for e in doc["measurements"] if e.get("date")})
    return "?" if not d else d[0] if len(d) == 1 else f"{d[0]} to {d[-1]}"


def markdown(doc):
    main, split, notes = tables(doc)
    meta = doc["meta"]
    bins = meta.get("edgeseg_binaries", {})
    bin_lines = "; ".join(f"{arch}: `{b.get('path')}` (sha256 {b.get('sha256', '')[:12]})" for arch, b in bins.items())
    checks = output_check_notes(doc)
    parts = [
        "Executed guest instructions per inference under qemu-user "
        f"{meta.get('qemu_version', '?')} (TCG, Debian's `qemu-user`) with the counting plugin "
        "`scripts/emu/insn_count.c`, counted over every guest thread (spinning helpers included): "
        "(count of a process doing 3 runs − count of a process doing 1 run) / 2, so start-up, model load "
        "and the first run's allocations cancel. **Instructions are a proxy for time on the emulated core, "
        "not a time**: TCG executes the guest's instructions without its caches, pipeline or memory latency, "
        "so a SIMD multiply-add, a scalar add and a cache-missing load each count 1. At 4 threads the figures "
        "include what idle helpers spin, and depend on how the host (2 cores here) schedules the 4 guest "
        "threads, so they vary between runs more than the 1-thread ones.",
        "",
        f"Millions of instructions per inference (M), measured {dates(doc)}; edgeseg binaries: commit "
        f"{meta.get('binaries_commit', '?')} ({bin_lines}); onnxruntime {guest.ORT_VERSION}, ncnn "
        f"{guest.NCNN_VERSION} (models converted by pnnx {guest.PNNX_VERSION}, fp32 weights). aarch64: edgeseg "
        "static musl build with `TRACT_CPU_AARCH64_KIND` = the CPU; onnxruntime and ncnn from their aarch64 "
        "wheels in Debian 12's arm64 CPython 3.11, with a `/proc/cpuinfo` describing the board's core. "
        "Haswell: `qemu-x86_64 -cpu Haswell` (AVX2 + FMA, no AVX-512) on the x86-64 build named above, the "
        "host's CPython 3.11 and onnxruntime, and ncnn's x86-64 wheel. Input: the uniform mid-gray frame of "
        "`edgeseg bench` and `scripts/bench_ort.py`. ncnn fp32: fp16/bf16 storage, packing and arithmetic "
        "off; ncnn default: ncnn's own settings (fp16 storage and arithmetic on the A76). "
        "Ratios < 1: edgeseg executes fewer instructions. ncnn int8 is not measured (it needs ncnn's own "
        "calibration table): — in the int8 rows.",
        "",
        "Reproduce (the commands that filled `models/emu_bench.json`, in order; see scripts/emu_bench.py "
        "for the options):",
        "",
        "```sh",
        *meta.get("commands", []),
        "```",
        "",
        main,
        "",
        "Share of those instructions that touch SIMD/FP registers and that load or store (prefetches "
        "excluded); in brackets, where over 0.05 %, the instruction-set markers: `dot` SDOT/UDOT, `fp16` "
        "half-precision arithmetic and conversions (aarch64, classified by encoding), `ymm` instructions "
        "on 256-bit registers, `zmm` on 512-bit ones (x86):",
        "",
        split,
    ]
    tt = targets_table(doc)
    if tt:
        parts += ["", "Issue 23's targets at 1 thread (ratios of instructions per inference; met = at or under "
                  "the limit):", "", tt]
    if notes:
        parts += ["", notes]
    if checks:
        parts += ["", "Outputs of the emulated onnxruntime and ncnn runs against native onnxruntime on the host "
                  "(max |diff| / max |output|): " + "; ".join(checks) + "."]
    return "\n".join(parts) + "\n"


def write_readme(path, block):
    text = open(path).read() if os.path.exists(path) else ""
    wrapped = f"{MARK_BEGIN}\n{block}{MARK_END}"
    if MARK_BEGIN in text and MARK_END in text:
        a = text.index(MARK_BEGIN)
        b = text.index(MARK_END) + len(MARK_END)
        text = text[:a] + wrapped + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n## Emulated CPUs: instructions per inference\n\n" + wrapped + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# --- main -------------------------------------------------------------------------------------

def parse_list(values, allowed=None, kind=str):
    out = []
    for v in values or []:
        for x in str(v).split(","):
            x = x.strip()
            if not x:
                continue
            x = kind(x)
            if allowed is not None and x not in allowed:
                sys.exit(f"unknown value {x!r} (choose from {', '.join(map(str, allowed))})")
            out.append(x)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", help=f"names in models/ or .onnx paths (default: {' '.join(MODELS)})")
    ap.add_argument("--cpus", nargs="+", help=f"qemu -cpu values (default: {' '.join(CPUS)})")
    ap.add_argument("--runtimes", nargs="+", help=f"from {', '.join(RUNTIMES)} (default: {' '.join(DEFAULT_RUNTIMES)})")
    ap.add_argument("--threads", nargs="+", help="thread counts (default: 1 4)")
    ap.add_argument("--ncnn-modes", nargs="+", help="ncnn settings: fp32, default (default: both)")
    ap.add_argument("--litert", action="store_true", help="also LiteRT/XNNPACK (needs models/NAME.tflite)")
    ap.add_argument("--edgeseg-aarch64", help="prebuilt static aarch64 edgeseg (default: cargo build --release "
                    "--target aarch64-unknown-linux-musl)")
    ap.add_argument("--edgeseg-x86", help="prebuilt x86-64 edgeseg (default: cargo build --release)")
    ap.add_argument("--binaries-commit", help="the commit the edgeseg binaries were built from (for the report; "
                    "default: this checkout's HEAD when the script builds them)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="emulated processes at once (default: cores)")
    ap.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per emulated process")
    ap.add_argument("--output", default=os.path.join(ROOT, "models", "emu_bench.json"))
    ap.add_argument("--fresh", action="store_true", help="discard the measurements already in --output")
    ap.add_argument("--resume", action="store_true", help="keep measurements in --output whose binary, model and "
                    "runtime are unchanged instead of measuring them again")
    ap.add_argument("--readme", nargs="?", const=os.path.join(ROOT, "models", "README.md"),
                    help="write the table into this markdown file between <!-- emu-bench --> markers "
                    "(default file: models/README.md)")
    ap.add_argument("--table-only", action="store_true", help="print (and --readme) the table from --output only")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="add the measurements of these JSON files (from "
                    "invocations run at the same time with their own --output) into --output, then print the table")
    ap.add_argument("--dry-run", action="store_true", help="print the planned commands, run nothing")
    a = ap.parse_args()

    doc = {"meta": {}, "measurements": [], "ncnn_conversions": {}}
    if os.path.exists(a.output) and not a.fresh:
        doc = json.load(open(a.output))
    if a.merge:
        for path in a.merge:
            other = json.load(open(path))
            ids = {e["id"] for e in other["measurements"]}
            doc["measurements"] = [e for e in doc["measurements"] if e["id"] not in ids] + other["measurements"]
            doc.setdefault("ncnn_conversions", {}).update(other.get("ncnn_conversions", {}))
            om, meta = other.get("meta", {}), doc.setdefault("meta", {})
            meta["commands"] = meta.get("commands", []) + [c for c in om.get("commands", [])
                                                           if c not in meta.get("commands", [])]
            meta.setdefault("edgeseg_binaries", {}).update(om.get("edgeseg_binaries", {}))
            for k in ("binaries_commit", "qemu_version", "date", "onnxruntime", "ncnn", "pnnx", "plugin", "method"):
                if om.get(k) and (k != "binaries_commit" or "edgeseg_binaries" in om and om["edgeseg_binaries"]):
                    meta[k] = om[k]
        doc["measurements"].sort(key=lambda e: (e["model"], e["cpu"], e["threads"], e["runtime"], e.get("mode", "")))
        with open(a.output + ".tmp", "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(a.output + ".tmp", a.output)
        a.table_only = True
    if a.table_only:
        md = markdown(doc)
        print(md)
        if a.readme:
            write_readme(a.readme, md)
        return 0

    models = parse_list(a.models) or MODELS
    cpus = parse_list(a.cpus, CPUS) or CPUS
    runtimes = parse_list(a.runtimes, RUNTIMES) or list(DEFAULT_RUNTIMES)
    if a.litert and "litert" not in runtimes:
        runtimes.append("litert")
    threads = parse_list(a.threads, None, int) or THREADS
    modes = parse_list(a.ncnn_modes, NCNN_MODES) or NCNN_MODES
    for tool in ("qemu-aarch64" if set(cpus) & ARM_CPUS else None, "qemu-x86_64" if set(cpus) & X86_CPUS else None):
        if tool and not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian: apt-get install qemu-user)")

    # edgeseg binaries
    bins = {}
    if "edgeseg" in runtimes:
        built = False
        if set(cpus) & ARM_CPUS:
            path = a.edgeseg_aarch64 or build_edgeseg("aarch64-unknown-linux-musl")
            built |= not a.edgeseg_aarch64
            if elf_machine(path) != 0xB7:
                sys.exit(f"{path} is not an aarch64 executable")
            bins["aarch64"] = {"path": os.path.abspath(path), "sha256": sha256_file(path)}
        if set(cpus) & X86_CPUS:
            path = a.edgeseg_x86 or build_edgeseg(None)
            built |= not a.edgeseg_x86
            if elf_machine(path) != 0x3E:
                sys.exit(f"{path} is not an x86-64 executable")
            bins["x86_64"] = {"path": os.path.abspath(path), "sha256": sha256_file(path)}
        commit = a.binaries_commit or (git_commit() if built else "unknown (prebuilt; pass --binaries-commit)")
    else:
        commit = a.binaries_commit or doc["meta"].get("binaries_commit", "")

    plugin = build_plugin()
    # Keep what is already in the JSON, except edgeseg figures from other binaries.
    old = doc.get("measurements", [])
    keep = []
    for e in old:
        arch = "aarch64" if e["cpu"] in ARM_CPUS else "x86_64"
        if e["runtime"] == "edgeseg" and arch in bins and e.get("binary_sha256") != bins[arch]["sha256"]:
            continue
        keep.append(e)
    if len(keep) < len(old):
        log(f"dropped {len(old) - len(keep)} edgeseg measurements of other binaries from {a.output}")
    old_by_id = {e["id"]: e for e in keep}

    # Plan
    measurements = []
    conversions = doc.get("ncnn_conversions", {})
    for name in models:
        path = model_path(name)
        if not os.path.exists(path):
            sys.exit(f"{path} not found")
        mname = model_name(path)
        sha = sha256_file(path)
        x_npy = ref = None
        weight = {"unet": 8, "deep": 4}.get(mname[:4], 1)
        for rt in runtimes:
            if rt in ("onnxruntime", "ncnn") and x_npy is None:
                x_npy = model_input(path, sha)
                ref = host_reference(path, sha, x_npy)
            variants = [""]
            if rt == "ncnn":
                variants = modes
            conv = None
            if rt == "ncnn" and not is_int8(mname):
                conv = ncnn_convert(path, sha, x_npy, ref)
                conversions[mname] = {k: v for k, v in conv.items()}
            for cpu in cpus:
                for t in threads:
                    for mode in variants:
                        mid = "-".join(x for x in (rt, mode, mname, cpu, f"t{t}") if x)
                        m = {"id": mid, "runtime": rt, "model": mname, "model_path": path, "model_sha256": sha,
                             "cpu": cpu, "threads": t, "weight": weight}
                        if mode:
                            m["mode"] = mode
                        if rt == "edgeseg":
                            b = bins["aarch64" if cpu in ARM_CPUS else "x86_64"]
                            m.update(binary=b["path"], binary_sha256=b["sha256"], binaries_commit=commit)
                        elif rt == "litert":
                            tfl = path[: -len(".onnx")] + ".tflite"
                            m.update(status="not measured",
                                     error=f"{os.path.relpath(tfl, ROOT)} does not exist: no TFLite versions of the "
                                     "models yet (convert them, then add scripts/emu/run_litert.py with the "
                                     "ai-edge-litert wheel)" if not os.path.exists(tfl) else
                                     "LiteRT runner not written yet (scripts/emu/run_litert.py)")
                            measurements.append(m)
                            continue
                        else:
                            m["input"] = x_npy
                            m["reference"] = ref
                            m["runtime_version"] = (f"onnxruntime {guest.ORT_VERSION}" if rt == "onnxruntime"
                                                    else f"ncnn {guest.NCNN_VERSION}")
                            m["runner_sha256"] = sha256_file(os.path.join(HERE, "emu", f"run_{'ort' if rt == 'onnxruntime' else 'ncnn'}.py"))
                            if rt == "ncnn":
                                if is_int8(mname):
                                    m.update(status="not measured", error="ncnn int8 needs its own calibration table")
                                    measurements.append(m)
                                    continue
                                if not conv["ok"]:
                                    m.update(status="not converted", error=conv.get("error", "pnnx failed"))
                                    measurements.append(m)
                                    continue
                                m.update(ncnn_param=conv["param"], ncnn_bin=conv["bin"],
                                         ncnn_outputs=",".join(conv["outputs"]))
                        measurements.append(m)

    def fingerprint(e):
        return tuple(e.get(k) for k in ("model_sha256", "binary_sha256", "runtime_version", "runner_sha256", "mode"))

    todo, done = [], []
    for m in measurements:
        prev = old_by_id.get(m["id"])
        if "status" in m:
            done.append(m)
        elif a.resume and prev and prev.get("status") == "ok" and fingerprint(prev) == fingerprint(m):
            done.append(prev)
        else:
            todo.append(m)
    for m in measurements:
        if m.get("status") and m["runtime"] != "litert" and not (m["runtime"] == "ncnn" and is_int8(m["model"])):
            log(f"skip {m['id']}: {m['status']}: {m.get('error')}")
    if "litert" in runtimes:
        log("litert: " + next(m["error"] for m in measurements if m["runtime"] == "litert"))

    date = datetime.date.today().isoformat()
    command = "python3 scripts/emu_bench.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    commands = [c for c in doc.get("meta", {}).get("commands", []) if c != command] + [command]
    doc["meta"] = {
        "date": date, "qemu_version": qemu_version(), "binaries_commit": commit, "edgeseg_binaries": bins or
        doc.get("meta", {}).get("edgeseg_binaries", {}), "commands": commands, "host_cpus": os.cpu_count(),
        "method": "instructions per inference = (count of a 3-run process - count of a 1-run process) / 2, "
                  "summed over every guest thread; a proxy for time, not a time",
        "onnxruntime": guest.ORT_VERSION, "ncnn": guest.NCNN_VERSION, "pnnx": guest.PNNX_VERSION,
        "plugin": os.path.basename(plugin),
    }
    doc["ncnn_conversions"] = conversions

    tmp = tempfile.mkdtemp(prefix="emu-bench-")
    procs = []
    for m in todo:
        ps = plan_measurement(m, plugin, tmp)
        m["_procs"] = ps
        procs += ps
    if a.dry_run:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in procs:
            print(p.command)
        return 0
    # Set up the guest Pythons before the pool starts (downloads, extraction).
    for cpu in {m["cpu"] for m in todo if m["runtime"] != "edgeseg"}:
        (guest.aarch64_python if cpu in ARM_CPUS else guest.x86_python)(cpu)

    final = {e["id"]: e for e in keep}
    for m in done:
        final[m["id"]] = m

    def save():
        ordered = sorted(final.values(), key=lambda e: (e["model"], e["cpu"], e["threads"], e["runtime"], e.get("mode", "")))
        doc["measurements"] = [{k: v for k, v in e.items() if not k.startswith("_")} for e in ordered]
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        with open(a.output + ".tmp", "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(a.output + ".tmp", a.output)

    save()
    procs.sort(key=lambda p: -p.weight)
    log(f"{len(todo)} measurements to make ({len(procs)} emulated processes, {a.jobs} at once), "
        f"{sum(1 for m in done if m.get('status') == 'ok')} kept from {a.output}, "
        f"{sum(1 for m in done if m.get('status') != 'ok')} not measurable; temporary files in {tmp}")
    t0 = time.time()
    remaining = {m["id"]: 2 for m in todo}
    by_id = {m["id"]: m for m in todo}
    n_done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        futs = [pool.submit(run_proc, p, a.timeout) for p in procs]
        for f in concurrent.futures.as_completed(futs):
            p = f.result()
            n_done += 1
            r = p.result
            what = (f"{r['counts']['instructions'] / 1e9:.2f} G insns, {r['counts']['vcpus']} vCPUs"
                    if "counts" in r else f"FAILED (exit {r['exit']}): {r.get('error', '')[-200:]}")
            log(f"[{n_done}/{len(procs)} {time.time() - t0:6.0f} s] {p.key} runs={p.runs}: {what}, {r['wall_s']} s")
            remaining[p.key] -= 1
            if remaining[p.key] == 0:
                m = finish_measurement(by_id[p.key], by_id[p.key]["_procs"], by_id[p.key].get("reference"))
                final[m["id"]] = m
                if m["status"] == "ok":
                    v = m["per_inference"]
                    oc = m.get("output_check", {})
                    log(f"    => {m['id']}: {v['instructions'] / 1e6:.1f} M instructions per inference "
                        f"(SIMD {v['simd'] / v['instructions']:.0%}, load/store {v['mem'] / v['instructions']:.0%})"
                        + (f", outputs vs host onnxruntime: max rel diff {oc['max_rel']:.1e}" if "max_rel" in oc else ""))
                else:
                    log(f"    => {m['id']}: {m['status']}: {m.get('error')}")
                save()
    save()
    shutil.rmtree(tmp, ignore_errors=True)
    md = markdown(doc)
    print(md)
    if a.readme:
        write_readme(a.readme, md)
        log(f"table written into {a.readme}")
    failed = [m for m in final.values() if m.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
