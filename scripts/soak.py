#!/usr/bin/env python3
"""Soak test of `edgeseg run`: hours of a camera's frames, compressed.

The daemon replays the bundled frames (samples/images) at --fps through a
tiny 1x1-convolution model (built here with onnx, ~0.1 ms a frame), so the
pipeline around the network (decode, preprocess, regions, RLE, overlay, JSON,
MQTT, dashboard) runs --fps / --camera-fps times faster than a real line:
at 100 FPS against a 10 FPS camera, 6 minutes are 1 hour of frames. Meanwhile,
on loopback only:

- a real Mosquitto (persistence on) is stopped with SIGTERM every
  --broker-every seconds and started again --broker-down seconds later;
- SIGHUP every --hup-every seconds, alternating a reload that keeps the MQTT
  table (the sink stays) and one that changes it (the queue moves on);
- a persistent mosquitto_sub session counts detections by frame number;
- the dashboard is watched: /api/status and /api/stats polled, /api/events read;
- RSS sampled from /proc every 2 s.

Checks: every frame judged (stdout) arrives on MQTT (none lost: outages are
kept far below sinks.mqtt.queue_limit), frame numbers never go back, and RSS
is flat (the last fifth of the run within --rss-slack-mib of the second fifth).
Prints a JSON summary; exit status 1 when a check fails.

    python3 scripts/soak.py                       # 6 min, ~1 h at 10 FPS
    python3 scripts/soak.py --duration 30         # a quick one
Needs: mosquitto, mosquitto_sub, the onnx Python package, a built edgeseg
(--bin, default target/release/edgeseg, else target/debug/edgeseg).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(path):
    """1x3x32x32 -> 1x2x32x32: one 1x1 convolution, edgeseg metadata."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[[[0.5]], [[0.3]], [[0.2]]], [[[-0.4]], [[0.9]], [[-0.3]]]], dtype=np.float32), "w")
    b = numpy_helper.from_array(np.array([0.1, -0.6], dtype=np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1])
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 32, 32])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in {"edgeseg.name": "soak-tiny", "edgeseg.classes": "background,defect", "edgeseg.input_size": "32x32"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)


class Broker:
    def __init__(self, workdir, port):
        self.port, self.dir, self.proc = port, workdir, None
        self.conf = os.path.join(workdir, "mosquitto.conf")
        # Started as root, mosquitto drops to its own user and then cannot save its
        # persistence here: subscriber sessions and their queued messages would die with it.
        stay = "user root\n" if os.geteuid() == 0 else ""
        with open(self.conf, "w") as f:
            f.write(stay)
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {workdir}/\n"
                    "autosave_interval 1\nautosave_on_changes true\nmax_queued_messages 1000000\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
        self.log = open(os.path.join(workdir, "mosquitto.log"), "ab")
        self.restarts = 0

    def start(self):
        exe = next(p for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "mosquitto"] if p == "mosquitto" or os.path.exists(p))
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("mosquitto did not start")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    """A persistent QoS 1 session (mosquitto_sub -c): what is published while it reconnects waits in the broker."""

    def __init__(self, port):
        self.frames, self.messages, self.lock = set(), 0, threading.Lock()
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-c", "-i", f"soak-{os.getpid()}",
                                      "-t", "edgeseg/+/detections"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            try:
                f = json.loads(line)["frame"]
            except (ValueError, KeyError):
                continue
            with self.lock:
                self.frames.add(f)
                self.messages += 1

    def alive(self):
        return self.proc.poll() is None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=360, help="wall seconds (default 360)")
    ap.add_argument("--fps", type=float, default=100, help="replay rate (default 100)")
    ap.add_argument("--camera-fps", type=float, default=10, help="the line's camera rate the run stands for (default 10)")
    ap.add_argument("--broker-every", type=float, default=45)
    ap.add_argument("--broker-down", type=float, default=3)
    ap.add_argument("--hup-every", type=float, default=20)
    ap.add_argument("--rss-slack-mib", type=float, default=8)
    ap.add_argument("--bin", default=None)
    args = ap.parse_args()
    exe = args.bin or next((p for p in [f"{ROOT}/target/release/edgeseg", f"{ROOT}/target/debug/edgeseg"] if os.path.exists(p)), None)
    if not exe:
        raise SystemExit("no edgeseg binary; fix: cargo build --release (or pass --bin)")

    work = tempfile.mkdtemp(prefix="edgeseg-soak-")
    model = os.path.join(work, "tiny.onnx")
    tiny_model(model)
    mqtt_port, dash_port = free_port(), free_port()
    broker = Broker(work, mqtt_port)
    broker.start()
    sub = Subscriber(mqtt_port)
    time.sleep(0.5)

    def config(variant):
        keep_alive = 30 if variant % 2 == 0 else 31  # odd variants change the MQTT table: the queue moves
        return (f"[device]\nname = \"soak\"\n[model]\npath = \"{model}\"\n"
                f"[source]\nkind = \"dir\"\npath = \"{ROOT}/samples/images\"\nfps = {args.fps}\nloop = true\n"
                f"[pipeline]\nstats_interval_s = {2 + variant % 3}\n[sinks.stdout]\n"
                f"[sinks.mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nkeep_alive_s = {keep_alive}\nqueue_limit = 5000\n"
                f"[dashboard]\nlisten = \"127.0.0.1:{dash_port}\"\n")

    cfg = os.path.join(work, "board.toml")
    with open(cfg, "w") as f:
        f.write(config(0))
    log = open(os.path.join(work, "edgeseg.log"), "wb")
    daemon = subprocess.Popen([exe, "run", "--config", cfg], stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "RUST_LOG": "info"})
    judged, backwards, emitted, events = [], [], {}, []

    def read_reports():
        last = -1
        for line in daemon.stdout:
            try:
                doc = json.loads(line)
                f = doc["frame"]
            except (ValueError, KeyError):
                continue
            emitted[f] = doc.get("emitted_unix_us", 0) / 1e6
            if f <= last:
                backwards.append((last, f))
            last = f
            judged.append(f)

    threading.Thread(target=read_reports, daemon=True).start()

    dash = {"polls": 0, "errors": 0, "events": 0, "sse_reconnects": 0}

    def watch_dashboard():
        # A viewer of the events stream for the whole run (reconnecting as a browser's EventSource does).
        time.sleep(2)
        while daemon.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{dash_port}/api/events", timeout=30) as r:
                    for line in r:
                        if line.startswith(b"event: frame"):
                            dash["events"] += 1
            except OSError:
                dash["sse_reconnects"] += 1
                time.sleep(1)

    threading.Thread(target=watch_dashboard, daemon=True).start()
    rss, t0 = [], time.time()
    next_broker, next_hup, variant, hups = t0 + args.broker_every, t0 + args.hup_every, 0, 0
    while time.time() - t0 < args.duration:
        if daemon.poll() is not None:
            raise SystemExit(f"edgeseg exited ({daemon.returncode}); log in {work}/edgeseg.log")
        now = time.time()
        rss.append((now - t0, rss_kib(daemon.pid)))
        try:
            for path in ("/api/status", "/api/stats"):
                urllib.request.urlopen(f"http://127.0.0.1:{dash_port}{path}", timeout=5).read()
            dash["polls"] += 1
        except OSError:
            dash["errors"] += 1
        if now >= next_broker:
            events.append((time.time(), "broker stop"))
            broker.stop()
            time.sleep(args.broker_down)
            broker.start()
            events.append((time.time(), "broker start"))
            broker.restarts += 1
            next_broker = time.time() + args.broker_every
        if now >= next_hup:
            variant += 1
            with open(cfg, "w") as f:
                f.write(config(variant))
            daemon.send_signal(signal.SIGHUP)
            events.append((time.time(), f"SIGHUP (variant {variant})"))
            hups += 1
            next_hup = now + args.hup_every
        time.sleep(2)

    daemon.send_signal(signal.SIGTERM)
    daemon.wait(30)
    wall = time.time() - t0
    judged_set = set(judged)
    deadline = time.time() + 30
    while time.time() < deadline and not judged_set <= sub.frames:
        time.sleep(0.5)
    missing = sorted(judged_set - sub.frames)
    with open(os.path.join(work, "timeline.txt"), "w") as f:
        for t, what in events:
            f.write(f"{t - t0:9.3f} {what}\n")
        for m in missing:
            f.write(f"{emitted.get(m, 0) - t0:9.3f} missing frame {m}\n")
    broker.stop()
    sub.proc.terminate()

    with open(os.path.join(work, "rss.csv"), "w") as f:
        f.write("seconds,rss_kib\n" + "".join(f"{t:.1f},{k}\n" for t, k in rss))
    # RSS: second fifth (warmed up) against the last fifth, and the trend over the second half.
    n = len(rss)
    half = rss[n // 2:]
    mt, mk = sum(t for t, _ in half) / len(half), sum(k for _, k in half) / len(half)
    var = sum((t - mt) ** 2 for t, _ in half) or 1.0
    slope_kib_s = sum((t - mt) * (k - mk) for t, k in half) / var
    mean = lambda xs: sum(x for _, x in xs) / max(1, len(xs))
    early, late = mean(rss[n // 5: 2 * n // 5]), mean(rss[4 * n // 5:])
    reloads = open(os.path.join(work, "edgeseg.log"), errors="replace").read().count("SIGHUP: reloaded")
    summary = {
        "wall_s": round(wall, 1),
        "frames_judged": len(judged),
        "judged_fps": round(len(judged) / wall, 1),
        "equivalent_hours_at_camera_fps": round(len(judged) / args.camera_fps / 3600, 2),
        "camera_fps": args.camera_fps,
        "broker_restarts": broker.restarts,
        "sighups": hups,
        "reloads_logged": reloads,
        "mqtt_messages": sub.messages,
        "mqtt_frames_distinct": len(sub.frames),
        "frames_missing_on_mqtt": len(missing),
        "missing_sample": missing[:20],
        "frame_numbers_went_back": backwards[:10],
        "rss_mib_second_fifth": round(early / 1024, 1),
        "rss_mib_last_fifth": round(late / 1024, 1),
        "rss_mib_max": round(max(x for _, x in rss) / 1024, 1),
        "rss_trend_second_half_mib_per_equivalent_hour": round(slope_kib_s / 1024 * 3600 * wall / max(1e-9, len(judged) / args.camera_fps), 2),
        "dashboard": dash,
        "workdir": work,
    }
    print(json.dumps(summary, indent=2))
    ok = not missing and not backwards and late - early <= args.rss_slack_mib * 1024 and reloads == hups and dash["polls"] > 0
    print("soak: OK" if ok else "soak: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
