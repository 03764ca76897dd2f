#!/usr/bin/env python3
"""Audit append throughput under 8 concurrent writers with checkpoint signing, and
checkpoint latency (commit -> covered by a signed checkpoint).

Runs `cargo bench -p strongroom --bench audit_load` (a load generator over the real
platform and SQLite files; see the bench's header) and prints writes/s with the ratio
to bare durable SQLite commits measured in the same run, and latency percentiles.

Usage: python3 bench/audit_load.py
"""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    run = subprocess.run(["cargo", "bench", "--locked", "-p", "strongroom", "--bench", "audit_load"],
                         cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(run.returncode)
    rows = [l.split()[1:] for l in run.stdout.splitlines() if l.startswith("audit-load:")]
    base = float(rows[0][1])
    print(f"{'measurement (8 writers)':<38} {'writes/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'probes':>6}")
    print(f"{'baseline: bare SQLite commit, 560 B':<38} {base:>9,.0f} {'1.00':>6}")
    for r in rows[1:]:
        name, rate, p50, p99, mx, n = r[0], float(r[1]), r[2], r[3], r[4], r[5]
        fmt = lambda v: "-" if v == "NaN" else f"{float(v):.0f}"
        print(f"{'audited write, ' + name:<38} {rate:>9,.0f} {rate / base:>6.2f} {fmt(p50):>7} {fmt(p99):>7} {fmt(mx):>7} {n:>6}")


if __name__ == "__main__":
    main()
