#!/usr/bin/env python3
"""Soak of the device dashboard under hostile clients (issue 24), loopback only.

Runs `edgeseg run` on its embedded demo (dashboard on 127.0.0.1:8080; with
--port, a config file equal to the demo on that port), keeps a legitimate
viewer on the MJPEG stream and the SSE events and polls /api/stats, while
bounded loops of hostile clients run beside it:

- slowloris: 160 connections from 127.0.0.2-5 trickling a request head;
- oversize bodies: POST /api/segment claiming 17 MiB (refused from the head),
  and 16 MiB of junk (read, then refused as not an image);
- foreign Host names (DNS rebinding) and malformed heads.

Samples the daemon's RSS every 5 s. Passes (exit 0) when every legitimate poll
was answered 200, the viewers kept receiving, and RSS at the end is within
--rss-slack-mb of RSS after warm-up.

    python3 scripts/soak_dashboard.py [--seconds 180] [--bin target/debug/edgeseg] [--port 8080]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(port, raw, timeout=15, src=None):
    """Send raw bytes, return (status, seconds); status 0 when no answer came."""
    t = time.monotonic()
    try:
        s = socket.socket()
        if src:
            s.bind((src, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        parts = data.split(b" ", 2)
        return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), time.monotonic() - t
    except OSError:
        return 0, time.monotonic() - t


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--bin", default=os.environ.get("EDGESEG_BIN", os.path.join(ROOT, "target/debug/edgeseg")))
    ap.add_argument("--port", type=int, default=8080, help="8080: the embedded demo as it is; another: the same demo on that port")
    ap.add_argument("--rss-slack-mb", type=float, default=32.0)
    ap.add_argument("--only", default="", help="comma-separated subset of the hostile loops to run "
                    "(slowloris, bodies, heads), to tell which one memory follows; default all")
    args = ap.parse_args()
    port = args.port

    probe = socket.socket()
    if probe.connect_ex(("127.0.0.1", port)) == 0:
        sys.exit(f"port {port} is in use; fix: stop what listens there, or pass --port N")
    probe.close()
    cmd = [args.bin, "run"]
    tmp = tempfile.mkdtemp(prefix="edgeseg-soak-")
    if port != 8080:
        cfg = os.path.join(tmp, "demo.toml")
        with open(cfg, "w") as f:
            f.write(f'[model]\npath = "{ROOT}/models/unet_defects.onnx"\n[source]\nkind = "sample"\nfps = 5\n[sinks.stdout]\n[dashboard]\nlisten = "127.0.0.1:{port}"\n')
        cmd += ["--config", cfg]
    log = open(os.path.join(tmp, "daemon.log"), "w")
    daemon = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    try:
        deadline = time.monotonic() + 120
        while request(port, f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(), 2)[0] != 200:
            if daemon.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the daemon did not serve on {port}; log in {log.name}")
            time.sleep(0.5)
        return soak(daemon, port, time.monotonic() + max(30, min(args.seconds, 1800)), args)
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()


def soak(daemon, port, end, args):
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    legit, hostile, viewer = Counter(), Counter(), Counter()
    latencies = []
    stop = threading.Event()

    def stream(path, key, marker):
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"GET " + path + b" HTTP/1.1\r\n" + host + b"\r\n")
                viewer.add(key + "_connects")
                tail = b""
                while not stop.is_set():
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    viewer.add(key, (tail + chunk).count(marker))
                    tail = chunk[-len(marker):]
                s.close()
            except OSError:
                viewer.add(key + "_errors")
                time.sleep(1)

    def poll():
        while not stop.is_set():
            status, secs = request(port, b"GET /api/stats HTTP/1.1\r\n" + host + b"\r\n", 15)
            legit.add(status)
            latencies.append(secs)
            time.sleep(0.5)

    def slowloris(src):
        conns = []
        while not stop.is_set():
            while len(conns) < 40:
                try:
                    s = socket.socket()
                    s.bind((src, 0))
                    s.settimeout(5)
                    s.connect(("127.0.0.1", port))
                    s.sendall(b"GET / HTTP/1.1\r\n")
                    conns.append(s)
                    hostile.add("slowloris_opened")
                except OSError:
                    hostile.add("slowloris_connect_failed")
                    break
            time.sleep(5)
            alive = []
            for s in conns:
                try:
                    s.sendall(b"X")
                    alive.append(s)
                except OSError:
                    hostile.add("slowloris_cut_off")
                    s.close()
            conns = alive
        for s in conns:
            s.close()

    junk = os.urandom(16 << 20)

    def bodies():
        while not stop.is_set():
            st, _ = request(port, b"POST /api/segment HTTP/1.1\r\n" + host + b"Content-Type: image/png\r\nContent-Length: 17825792\r\n\r\n")
            hostile.add(f"oversize_claim_{st}")
            st, _ = request(port, b"POST /api/segment HTTP/1.1\r\n" + host + b"Content-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(junk) + junk, 60)
            hostile.add(f"junk_16mib_{st}")

    def bad_heads():
        while not stop.is_set():
            for raw in [
                b"GET /api/frame.jpg HTTP/1.1\r\nHost: attacker.example\r\n\r\n",
                b"POST /api/segment HTTP/1.1\r\n" + host + b"Origin: http://attacker.example\r\nContent-Type: image/png\r\nContent-Length: 1\r\n\r\nx",
                b"POST /api/segment HTTP/1.1\r\n" + host + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n",
                b"\x16\x03\x01garbage\r\n\r\n",
            ]:
                st, _ = request(port, raw, 5, "127.0.0.6")
                hostile.add(f"bad_head_{st}")
            time.sleep(0.05)

    only = {x for x in args.only.split(",") if x}
    wanted = lambda name: not only or name in only  # noqa: E731
    threads = [threading.Thread(target=stream, args=(b"/api/stream.mjpeg", "mjpeg_frames", b"--edgesegframe")),
               threading.Thread(target=stream, args=(b"/api/events", "sse_events", b"event: frame")),
               threading.Thread(target=poll)]
    threads += [threading.Thread(target=bodies)] if wanted("bodies") else []
    threads += [threading.Thread(target=bad_heads)] if wanted("heads") else []
    threads += [threading.Thread(target=slowloris, args=(f"127.0.0.{i}",)) for i in range(2, 6)] if wanted("slowloris") else []
    for t in threads:
        t.daemon = True
        t.start()
    samples = []
    started = time.monotonic()
    while time.monotonic() < end and daemon.poll() is None:
        samples.append((time.monotonic() - started, rss_mib(daemon.pid)))
        print(f"{samples[-1][0]:6.0f} s  RSS {samples[-1][1]:7.1f} MiB  polls {sum(legit.counts.values())}  mjpeg {viewer.counts.get('mjpeg_frames', 0)}  sse {viewer.counts.get('sse_events', 0)}", flush=True)
        time.sleep(5)
    stop.set()
    alive = daemon.poll() is None
    warm = [r for t, r in samples if t >= 20] or [r for _, r in samples]
    polls = sum(legit.counts.values())
    ok = legit.counts.get(200, 0)
    lat = sorted(latencies) or [0]
    report = {
        "seconds": round(time.monotonic() - started),
        "daemon_alive": alive,
        "rss_mib": {"after_warmup": round(warm[0], 1), "max": round(max(warm), 1), "end": round(warm[-1], 1)},
        "legit_polls": {"total": polls, "ok_200": ok, "by_status": {str(k): v for k, v in sorted(legit.counts.items())},
                        "p50_ms": round(1000 * statistics.median(lat), 1), "max_ms": round(1000 * lat[-1], 1)},
        "viewer": viewer.counts,
        "hostile": dict(sorted(hostile.counts.items())),
    }
    print(json.dumps(report, indent=2))
    passed = alive and polls > 0 and ok == polls and viewer.counts.get("mjpeg_frames", 0) > 0 and viewer.counts.get("sse_events", 0) > 0 \
        and warm[-1] - warm[0] <= args.rss_slack_mb
    print("soak PASSED" if passed else "soak FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
