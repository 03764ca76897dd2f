#!/usr/bin/env python3
"""Encryption throughput and key-unwrap latency, next to their baselines.

Runs, on this machine, in this order:
  1. `openssl speed -evp aes-256-gcm` at 1 KiB, 64 KiB (our stream chunk) and 1 MiB:
     the AES-256-GCM limit of this CPU, single-threaded;
  2. `cargo bench -p strongroom-core --bench crypto`: sealing and opening 1 KiB and
     1 MiB values and 64 MiB streams, single-threaded;
  3. a fresh SoftHSM2 token, then `cargo bench -p strongroom --bench hsm`: one unwrap
     on the token, and reading a tenant secret with and without the key cache;
and prints one table with MB/s (10^6 bytes/s) and the ratio of each to openssl.

Usage: python3 bench/crypto.py [--quick]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]


def openssl(size, seconds, decrypt=False):
    cmd = ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", str(seconds), "-bytes", str(size)]
    if decrypt:
        cmd.append("-decrypt")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.upper().startswith("AES-256-GCM")][-1]
    # "The 'numbers' are in 1000s of bytes per second processed."
    return float(line.split()[-1].rstrip("k")) * 1000 / 1e6


def estimate_ns(path):
    with open(os.path.join(TARGET, "criterion", *path.split("/"), "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"]


def cargo_bench(args, env=None):
    subprocess.run(["cargo", "bench", "--locked", *args], cwd=ROOT, env=env, check=True,
                   stdout=sys.stderr)


def softhsm(tmp):
    module = next((m for m in MODULES if os.path.exists(m)), None)
    if module is None:
        sys.exit("softhsm2 is not installed (apt-get install softhsm2)")
    os.makedirs(os.path.join(tmp, "tokens"))
    conf = os.path.join(tmp, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {tmp}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    pin = os.path.join(tmp, "pin")
    with open(pin, "w") as f:
        f.write("bench-pin-1234\n")
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench",
                    "--so-pin", "so-1234", "--pin", "bench-pin-1234"], env=env, check=True,
                   capture_output=True)
    env.update(SR_BENCH_P11_MODULE=module, SR_BENCH_P11_TOKEN="bench", SR_BENCH_P11_PIN_FILE=pin)
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    a = ap.parse_args()
    secs = 1 if a.quick else 3
    crit = ["--warm-up-time", "1", "--measurement-time", "2" if a.quick else "5"]

    base = {size: openssl(size, secs) for size in (1024, 65536, 1 << 20)}
    base_dec = {size: openssl(size, secs, decrypt=True) for size in (1024, 65536, 1 << 20)}
    cargo_bench(["-p", "strongroom-core", "--bench", "crypto", "--", *crit])
    with tempfile.TemporaryDirectory() as tmp:
        cargo_bench(["-p", "strongroom", "--bench", "hsm", "--", *crit], env=softhsm(tmp))

    rows = [
        ("openssl aes-256-gcm encrypt, 1 KiB", base[1024], None),
        ("openssl aes-256-gcm decrypt, 1 KiB", base_dec[1024], None),
        ("openssl aes-256-gcm encrypt, 64 KiB", base[65536], None),
        ("openssl aes-256-gcm decrypt, 64 KiB", base_dec[65536], None),
        ("openssl aes-256-gcm encrypt, 1 MiB", base[1 << 20], None),
        ("openssl aes-256-gcm decrypt, 1 MiB", base_dec[1 << 20], None),
    ]
    cases = [
        ("seal 1 KiB value", "value/seal/1KiB", 1024, base[1024]),
        ("open 1 KiB value", "value/open/1KiB", 1024, base_dec[1024]),
        ("seal+open 1 KiB value (per pass)", "value/seal+open/1KiB", 2 * 1024, (base[1024] + base_dec[1024]) / 2),
        ("seal 1 MiB value", "value/seal/1MiB", 1 << 20, base[1 << 20]),
        ("open 1 MiB value", "value/open/1MiB", 1 << 20, base_dec[1 << 20]),
        ("seal+open 1 MiB value (per pass)", "value/seal+open/1MiB", 2 << 20, (base[1 << 20] + base_dec[1 << 20]) / 2),
        ("stream seal 64 MiB", "stream/seal/64MiB", 64 << 20, base[65536]),
        ("stream open 64 MiB", "stream/open/64MiB", 64 << 20, base_dec[65536]),
    ]
    for name, path, nbytes, baseline in cases:
        mbs = nbytes / estimate_ns(path) * 1e3
        rows.append((name, mbs, mbs / baseline))
    print(f"{'measurement':<40} {'MB/s':>10} {'ratio to openssl':>18}")
    for name, v, r in rows:
        print(f"{name:<40} {v:>10.0f} {('%.2f' % r) if r is not None else 'baseline':>18}")
    unwrap = estimate_ns("hsm/unwrap") / 1e3
    cached = estimate_ns("hsm/open-secret_cached") / 1e3
    uncached = estimate_ns("hsm/open-secret_uncached") / 1e3
    print()
    print(f"{'latency':<40} {'µs':>10} {'ratio to cached':>18}")
    print(f"{'open tenant secret, keys cached':<40} {cached:>10.1f} {'baseline':>18}")
    print(f"{'open tenant secret, no key cache':<40} {uncached:>10.1f} {uncached / cached:>18.1f}")
    print(f"{'SoftHSM2 unwrap (C_Decrypt AES-GCM)':<40} {unwrap:>10.1f} {unwrap / cached:>18.1f}")


if __name__ == "__main__":
    main()
