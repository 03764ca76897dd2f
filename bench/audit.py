#!/usr/bin/env python3
"""`audit verify` speed on a 1,000,000-entry log, next to the SHA-256 limit.

Runs `openssl speed -evp sha256 -bytes 512` (our canonical entries average ~500 bytes)
as the baseline, then `cargo bench -p strongroom-core --bench audit` (verify of an
in-memory export: signature, every entry re-hashed, sequence numbers, level-0 tiles,
root; plus leaf hashing and root computation alone), and prints entries/s, the hashed
bytes/s and the ratio to openssl.

Usage: python3 bench/audit.py
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def estimate_ns(path):
    with open(os.path.join(TARGET, "criterion", *path.split("/"), "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"]


def main():
    out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-seconds", "3", "-bytes", "512"],
                         capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.lower().startswith("sha256")][-1]
    openssl = float(line.split()[-1].rstrip("k")) * 1000
    run = subprocess.run(["cargo", "bench", "--locked", "-p", "strongroom-core", "--bench", "audit", "--",
                          "--warm-up-time", "1", "--measurement-time", "10"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    sys.stderr.write(run.stderr)
    m = re.search(r"audit-bench: (\d+) entries, (\d+) bytes", run.stdout)
    entries, nbytes = int(m.group(1)), int(m.group(2))
    mean = nbytes / entries
    limit = openssl / (mean + 1)  # entries/s if only leaf hashing ran at openssl speed
    print(f"{'measurement':<44} {'entries/s':>12} {'MB/s hashed':>12} {'ratio':>8}")
    print(f"{'baseline: openssl sha256, 512-byte blocks':<44} {limit:>12,.0f} {openssl / 1e6:>12.0f} {'1.00':>8}")
    for name, path in [("leaf hashes only (1M entries)", "audit/leaf-hashes-1M"),
                       ("audit verify, 1M entries (end to end)", "audit/verify-1M")]:
        rate = entries / (estimate_ns(path) / 1e9)
        print(f"{name:<44} {rate:>12,.0f} {rate * (mean + 1) / 1e6:>12.0f} {rate / limit:>8.2f}")
    root_ms = estimate_ns("audit/root-1M") / 1e6
    print(f"root of 1M leaf hashes: {root_ms:.0f} ms; mean entry {mean:.0f} bytes")


if __name__ == "__main__":
    main()
