#!/usr/bin/env python3
"""Start-up time and idle memory of `strongroom serve`.

Measures, with the release binary:
  * baseline: `strongroom version` (process start, argument parsing, exit) — wall time
    and peak RSS — so the server's figures can be read as ratios to it;
  * `serve` on an empty data directory (initialisation: root key, certificate,
    databases, signing key) — time from spawn to the `listening on` line;
  * `serve` on an initialised data directory — the same;
  * idle RSS of the server 2 s after it is listening.

Usage: python3 bench/startup.py [--runs N]   (build first: cargo build --release)
"""
import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

def binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    path = os.path.join(target, "release", "strongroom")
    if not os.path.exists(path):
        sys.exit(f"{path} not found: run `cargo build --release` first")
    return path

def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env["STRONGROOM_LOG__LEVEL"] = "warn"
    return env

def version_run(bin_):
    start = time.perf_counter()
    proc = subprocess.Popen([bin_, "version"], stdout=subprocess.DEVNULL, env=clean_env())
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss

def serve_run(bin_, data_dir):
    start = time.perf_counter()
    proc = subprocess.Popen(
        [bin_, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env(), text=True)
    for line in proc.stdout:
        if line.startswith("strongroom: listening on "):
            break
    elapsed = time.perf_counter() - start
    time.sleep(2)
    with open(f"/proc/{proc.pid}/status") as f:
        rss_kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return elapsed, rss_kib

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    bin_ = binary()
    base = [version_run(bin_) for _ in range(args.runs)]
    base_t = statistics.median(t for t, _ in base)
    base_rss = statistics.median(r for _, r in base)
    empty, warm, rss = [], [], []
    for _ in range(args.runs):
        d = tempfile.mkdtemp()
        try:
            t, _ = serve_run(bin_, os.path.join(d, "data"))
            empty.append(t)
            t, r = serve_run(bin_, os.path.join(d, "data"))
            warm.append(t)
            rss.append(r)
        finally:
            shutil.rmtree(d)
    e, w, r = statistics.median(empty), statistics.median(warm), statistics.median(rss)
    print(f"runs: {args.runs} (medians)")
    print("| measurement | value | ratio to baseline |")
    print("|---|---|---|")
    print(f"| baseline: `strongroom version` wall time | {base_t*1000:.1f} ms | 1.0 |")
    print(f"| `serve`, empty data directory, spawn → listening | {e*1000:.1f} ms | {e/base_t:.1f}× |")
    print(f"| `serve`, initialised data directory, spawn → listening | {w*1000:.1f} ms | {w/base_t:.1f}× |")
    print(f"| baseline: `strongroom version` peak RSS | {base_rss/1024:.1f} MiB | 1.0 |")
    print(f"| `serve` idle RSS (2 s after listening) | {r/1024:.1f} MiB | {r/base_rss:.1f}× |")

if __name__ == "__main__":
    main()
