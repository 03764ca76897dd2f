#!/usr/bin/env python3
"""Sign-in cost for a tenant that exists vs one that does not (unknown e-mail, so both
fail): medians of N alternating requests against a running server. The two must be
indistinguishable, or response time tells which tenants exist.

Usage: bench/signin_timing.py HOST:PORT EXISTING_SLUG [N]
The server needs `[passwords] lockout_after` above 2*N (every attempt fails)."""
import http.client
import json
import ssl
import statistics
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
known = sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100
ctx = ssl._create_unverified_context()  # loopback, self-signed: timing only


def once(tenant, i):
    c = http.client.HTTPSConnection(host, int(port), context=ctx)
    body = json.dumps({"email": f"u{i}@nobody.example", "password": "correct horse battery staple 42"})
    t = time.perf_counter()
    c.request("POST", f"/v1/t/{tenant}/sessions", body, {"content-type": "application/json"})
    r = c.getresponse()
    r.read()
    d = time.perf_counter() - t
    assert r.status == 401, r.status
    return d


for _ in range(5):
    once(known, 10**6)
    once("no-such-tenant", 10**6)
k, u = [], []
for i in range(n):
    k.append(once(known, i))
    u.append(once("no-such-tenant", i))
mk, mu = statistics.median(k), statistics.median(u)
print(f"known tenant median {mk*1000:.1f} ms, unknown {mu*1000:.1f} ms, ratio {mu/mk:.3f}")
