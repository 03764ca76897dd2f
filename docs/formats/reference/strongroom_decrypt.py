#!/usr/bin/env python3
"""An independent reader of Strongroom's encryption at rest, written from
docs/formats/encryption.md alone (it shares no code with the server).

Given a stopped server's data directory with a local root key file, it unwraps a
tenant's keys and decrypts one tenant secret or one blob:

  strongroom_decrypt.py --data-dir D --region eu --tenant <uuid> --secret NAME
  strongroom_decrypt.py --data-dir D --region eu --tenant <uuid> --blob ID --out FILE

Needs Python 3.9+ and the `cryptography` package. Exit status 1 on any failure
(authentication failures included): it never prints unauthenticated data.
"""
import argparse
import base64
import os
import sqlite3
import struct
import sys
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def root_key(data_dir):
    for line in open(os.path.join(data_dir, "root.key")):
        if line.startswith("strongroom-root-key v1 "):
            b64 = line.split()[-1]
            return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    sys.exit("root.key has no key line")


def open_box(key, box, aad):
    """0x01 || nonce (12) || ciphertext || tag (16)  (§2.1 local, §2.2)."""
    if box[0] != 0x01:
        sys.exit("unsupported wrapped-key format (only the local key file is supported here)")
    return AESGCM(key).decrypt(box[1:13], box[13:], aad)


def binding(tenant, kind, oid, version):
    k, i = kind.encode(), oid.encode()
    return tenant.bytes + struct.pack(">H", len(k)) + k + struct.pack(">H", len(i)) + i + struct.pack(">Q", version)


def tenant_dek(db, root, tenant, version):
    kek_version, wrapped_dek = db.execute(
        "SELECT kek_version, wrapped FROM data_keys WHERE tenant_id = ? AND version = ?",
        (str(tenant), version)).fetchone()
    wrapped_kek, = db.execute(
        "SELECT wrapped FROM tenant_keks WHERE tenant_id = ? AND version = ?",
        (str(tenant), kek_version)).fetchone()
    context = f"tenant-kek:{tenant}:{kek_version}".encode()
    kek = open_box(root, wrapped_kek, b"strongroom/root-wrap/v1\0" + context)
    aad = b"strongroom/dek/v1\0" + tenant.bytes + struct.pack(">II", version, kek_version)
    return open_box(kek, wrapped_dek, aad)


def secret(db, root, tenant, name):
    version, sealed = db.execute(
        "SELECT version, sealed FROM sealed_values WHERE tenant_id = ? AND kind = 'tenant-secret' AND id = ?",
        (str(tenant), name)).fetchone()
    if sealed[0:2] != b"\x01\x01":
        sys.exit("not a sealed value")
    dek_version, = struct.unpack(">I", sealed[2:6])
    dek = tenant_dek(db, root, tenant, dek_version)
    header = sealed[:18]
    aad = b"strongroom/value/v1\0" + binding(tenant, "tenant-secret", name, version) + header
    return AESGCM(dek).decrypt(sealed[6:18], sealed[18:], aad)


def blob(db, root, tenant, region_dir, oid, out):
    file, = db.execute("SELECT file FROM blobs WHERE tenant_id = ? AND id = ?", (str(tenant), oid)).fetchone()
    with open(os.path.join(region_dir, "blobs", str(tenant), file), "rb") as f:
        header = f.read(30)
        if len(header) != 30 or header[0:2] != b"\x01\x02":
            sys.exit("not a stream")
        dek_version, = struct.unpack(">I", header[2:6])
        chunk = 1 << header[6]
        dek = tenant_dek(db, root, tenant, dek_version)
        info = b"strongroom/stream/v1\0"
        subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=header[7:23], info=info).derive(dek)
        aes = AESGCM(subkey)
        aad = info + binding(tenant, "blob", oid, 1) + header
        plain = bytearray()
        i, data = 0, f.read(chunk + 16)
        while True:
            following = f.read(chunk + 16)
            last = len(data) < chunk + 16 or not following
            nonce = header[23:30] + struct.pack(">I", i) + (b"\x01" if last else b"\x00")
            plain += aes.decrypt(nonce, data, aad)
            if last:
                if following:
                    sys.exit("data after the last chunk")
                break
            i, data = i + 1, following
    with open(out, "wb") as o:
        o.write(plain)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--tenant", required=True, type=uuid.UUID)
    ap.add_argument("--secret")
    ap.add_argument("--blob")
    ap.add_argument("--out")
    a = ap.parse_args()
    region_dir = os.path.join(a.data_dir, "regions", a.region)
    db = sqlite3.connect(f"file:{os.path.join(region_dir, 'strongroom.db')}?mode=ro", uri=True)
    root = root_key(a.data_dir)
    try:
        if a.secret:
            sys.stdout.buffer.write(secret(db, root, a.tenant, a.secret))
        elif a.blob and a.out:
            blob(db, root, a.tenant, region_dir, a.blob, a.out)
        else:
            sys.exit("give --secret NAME, or --blob ID --out FILE")
    except Exception as e:  # InvalidTag, missing rows: never print partial data
        sys.exit(f"cannot decrypt: {type(e).__name__} {e}")


if __name__ == "__main__":
    main()
