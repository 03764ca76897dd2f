//! `audit verify` speed: a 1,000,000-entry log held in memory (realistic canonical
//! entries, tiles, signed checkpoint), verified end to end — signature, every entry
//! re-hashed, sequence numbers, level-0 tiles, root.
//!
//! `bench/audit.py` runs this next to `openssl speed -evp sha256` and prints the ratio.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::collections::HashMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strongroom_core::audit::entry::{Action, Actor, NewEntry, Target};
use strongroom_core::audit::merkle::{Hash, leaf_hash, root_of};
use strongroom_core::audit::note::{Checkpoint, NoteSigner};
use strongroom_core::audit::tiles::{TileRef, push_entry};
use strongroom_core::audit::verify::{Source, Verdict, verify};
use strongroom_core::tenant::TenantId;
use time::OffsetDateTime;

const ENTRIES: u64 = 1_000_000;

struct Mem(HashMap<String, Vec<u8>>);

impl Source for Mem {
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
}

#[allow(clippy::too_many_lines)] // a bench fixture: one linear build of a log
fn log() -> (Mem, String, u64) {
    let tenant = TenantId::generate();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut files = HashMap::new();
    let mut leaves: Vec<Hash> = Vec::with_capacity(usize::try_from(ENTRIES).unwrap());
    let mut bundle = Vec::new();
    let mut bytes = 0u64;
    for seq in 0..ENTRIES {
        let e = NewEntry {
            action: Action::TenantSecretSet,
            actor: Actor {
                id: Some("0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61".into()),
                kind: "operator",
            },
            target: Target {
                id: format!("secret-{}", seq % 977),
                kind: "tenant-secret".into(),
                version: Some(seq / 977 + 1),
            },
            reason: None,
            session: Some("0193f0c4-0000-7c1d-9a55-3c2f1e0b7a61".into()),
            before: Some([7; 32]),
            after: Some([9; 32]),
            personal: None,
        }
        .at(
            tenant,
            seq,
            t0 + time::Duration::microseconds(i64::try_from(seq).unwrap()),
        )
        .canonical();
        bytes += e.len() as u64;
        leaves.push(leaf_hash(&e));
        push_entry(&mut bundle, &e).unwrap();
        if (seq + 1) % 256 == 0 || seq + 1 == ENTRIES {
            let n = seq / 256;
            let width = u16::try_from(seq % 256 + 1).unwrap();
            let start = usize::try_from(n * 256).unwrap();
            let tile: Vec<u8> = leaves[start..].concat();
            files.insert(
                TileRef {
                    level: None,
                    index: n,
                    width,
                }
                .path(),
                std::mem::take(&mut bundle),
            );
            files.insert(
                TileRef {
                    level: Some(0),
                    index: n,
                    width,
                }
                .path(),
                tile,
            );
        }
    }
    let signer =
        NoteSigner::from_seed("bench/t/acme/audit", &NoteSigner::generate_seed().unwrap()).unwrap();
    let cp = Checkpoint {
        origin: "bench/t/acme/audit".into(),
        size: ENTRIES,
        root: root_of(&leaves),
        extensions: vec![],
    };
    files.insert(
        "checkpoint".into(),
        signer.sign(&cp.text()).unwrap().into_bytes(),
    );
    (Mem(files), signer.vkey(), bytes)
}

fn verify_1m(c: &mut Criterion) {
    let (mut src, vkey, bytes) = log();
    println!(
        "audit-bench: {ENTRIES} entries, {bytes} bytes, mean entry {} bytes",
        bytes / ENTRIES
    );
    assert!(matches!(verify(&mut src, &vkey, None), Verdict::Ok(_)));
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES));
    let entries: Vec<Vec<u8>> = src
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("tile/entries/"))
        .flat_map(|(_, v)| {
            strongroom_core::audit::tiles::read_bundle(v)
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    group.bench_function("leaf-hashes-1M", |b| {
        b.iter(|| entries.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>());
    });
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    group.bench_function("root-1M", |b| b.iter(|| root_of(&leaves)));
    group.bench_function("verify-1M", |b| {
        b.iter(|| assert!(matches!(verify(&mut src, &vkey, None), Verdict::Ok(_))));
    });
    group.finish();
}

criterion_group!(benches, verify_1m);
criterion_main!(benches);
