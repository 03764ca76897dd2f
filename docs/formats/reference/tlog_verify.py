#!/usr/bin/env python3
"""An independent verifier of a Strongroom audit-log export, written from the C2SP
signed-note, tlog-checkpoint and tlog-tiles specifications and RFC 9162 (it shares no
code with the server).

  tlog_verify.py DIR VKEY [--inclusion INDEX] [--served-inclusion FILE]
                          [--served-consistency FILE]

Checks the checkpoint's Ed25519 signature against VKEY, re-hashes every entry from the
entry bundles, recomputes the Merkle root and compares it with the checkpoint; with
--inclusion, also builds and checks an RFC 9162 inclusion proof for that entry. With
--served-inclusion / --served-consistency, checks a proof served by the server's JSON
endpoints (/audit/proof/inclusion, /audit/proof/consistency) against the checkpoint's
root and against roots it computes itself from the entries.
Prints "OK <size> <root-hex>" and exits 0, or prints the problem and exits 1.
Needs Python 3.9+ and the `cryptography` package.
"""
import base64
import hashlib
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(msg):
    print("FAILED:", msg)
    sys.exit(1)


def parse_vkey(vkey):
    name, keyid, key = vkey.strip().split("+", 2)
    raw = base64.b64decode(key)
    if raw[0] != 1 or len(raw) != 33:
        fail("not an Ed25519 vkey")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyid:
        fail("vkey id does not match")
    return name, want, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note, name, keyid, pub):
    text, sep, sigs = note.rpartition("\n\n")
    if not sep:
        fail("no signature block")
    text += "\n"
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            fail("bad signature line")
        sname, b64 = line[2:].split(" ", 1)
        blob = base64.b64decode(b64)
        if sname == name and blob[:4] == keyid:
            pub.verify(blob[4:], text.encode())  # raises InvalidSignature
            return text
    fail("no signature by the verifier key")


def leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes):
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def path(m, hashes):
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    if len(hashes) <= 1:
        return []
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    if m < k:
        return path(m, hashes[:k]) + [mth(hashes[k:])]
    return path(m - k, hashes[k:]) + [mth(hashes[:k])]


def verify_inclusion(index, size, h, proof, root):
    """RFC 9162 2.1.3.2."""
    fn, sn, r = index, size - 1, h
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1, size2, proof, root1, root2):
    """RFC 9162 2.1.4.2."""
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        proof = [root1] + proof
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


def served(flag):
    import json
    if flag not in sys.argv:
        return None
    with open(sys.argv[sys.argv.index(flag) + 1]) as f:
        doc = json.load(f)
    doc["hashes"] = [bytes.fromhex(h) for h in doc["hashes"]]
    return doc


def index_path(n):
    s = "%d" % n
    s = "0" * (-len(s) % 3) + s
    groups = [s[i:i + 3] for i in range(0, len(s), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    d, vkey = sys.argv[1], sys.argv[2]
    name, keyid, pub = parse_vkey(vkey)
    text = open_note(open(os.path.join(d, "checkpoint")).read(), name, keyid, pub)
    origin, size, root_b64 = text.split("\n")[:3]
    size, root = int(size), base64.b64decode(root_b64)
    if origin != name:
        fail("origin differs from key name")
    hashes = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        p = os.path.join(d, "tile", "entries", index_path(n) + ("" if width == 256 else ".p/%d" % width))
        data = open(p, "rb").read()
        while data:
            ln = int.from_bytes(data[:2], "big")
            hashes.append(leaf(data[2:2 + ln]))
            data = data[2 + ln:]
    if len(hashes) != size:
        fail("entry count %d != checkpoint size %d" % (len(hashes), size))
    if mth(hashes) != root:
        fail("root mismatch")
    if "--inclusion" in sys.argv:
        i = int(sys.argv[sys.argv.index("--inclusion") + 1])
        if not verify_inclusion(i, size, hashes[i], path(i, hashes), root):
            fail("inclusion proof for %d does not verify" % i)
    doc = served("--served-inclusion")
    if doc is not None:
        i, n = doc["index"], doc["size"]
        want = root if n == size else mth(hashes[:n])
        if not verify_inclusion(i, n, hashes[i], doc["hashes"], want):
            fail("served inclusion proof for %d in %d does not verify" % (i, n))
    doc = served("--served-consistency")
    if doc is not None:
        m, n = doc["from"], doc["size"]
        want = root if n == size else mth(hashes[:n])
        if not verify_consistency(m, n, doc["hashes"], mth(hashes[:m]), want):
            fail("served consistency proof %d -> %d does not verify" % (m, n))
    print("OK", size, root.hex())


if __name__ == "__main__":
    main()
