//! Sealing throughput: values (1 KiB, 1 MiB) and STREAM (64 MiB), single-threaded.
//!
//! `bench/crypto.py` runs this next to `openssl speed -evp aes-256-gcm` and prints the
//! ratios; see BENCHMARKS.md.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom_core::keys::stream::{open_to, read_header, seal_to};
use strongroom_core::keys::{DataKey, ObjectRef, aead, sealed};
use strongroom_core::tenant::TenantId;

fn key() -> DataKey {
    DataKey {
        version: 1,
        key: aead::generate_key().unwrap(),
    }
}

fn values(c: &mut Criterion) {
    let key = key();
    let object = ObjectRef {
        tenant: TenantId::generate(),
        kind: "bench",
        id: "value",
        version: 1,
    };
    let mut group = c.benchmark_group("value");
    for (name, size) in [("1KiB", 1024usize), ("1MiB", 1 << 20)] {
        let data = vec![0x5a; size];
        let sealed_value = sealed::seal(&key, &object, &data).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", name), &data, |b, d| {
            b.iter(|| sealed::seal(&key, &object, d).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("open", name), &sealed_value, |b, s| {
            b.iter(|| sealed::open(&key, &object, s).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("seal+open", name), &data, |b, d| {
            b.iter(|| {
                sealed::open(&key, &object, &sealed::seal(&key, &object, d).unwrap()).unwrap()
            });
        });
    }
    group.finish();
}

fn streams(c: &mut Criterion) {
    let key = key();
    let object = ObjectRef {
        tenant: TenantId::generate(),
        kind: "bench",
        id: "stream",
        version: 1,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let size = 64usize << 20;
    let data = vec![0xa5; size];
    let mut sealed_stream = Vec::with_capacity(size + size / 4096 + 64);
    rt.block_on(seal_to(
        &key,
        &object,
        &mut data.as_slice(),
        &mut sealed_stream,
    ))
    .unwrap();
    let mut group = c.benchmark_group("stream");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function(BenchmarkId::new("seal", "64MiB"), |b| {
        b.iter(|| {
            rt.block_on(seal_to(
                &key,
                &object,
                &mut data.as_slice(),
                &mut tokio::io::sink(),
            ))
            .unwrap()
        });
    });
    group.bench_function(BenchmarkId::new("open", "64MiB"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut r = sealed_stream.as_slice();
                let header = read_header(&mut r).await.unwrap();
                open_to(&key, &object, &header, &mut r, &mut tokio::io::sink())
                    .await
                    .unwrap()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, values, streams);
criterion_main!(benches);
