use proptest::prelude::*;

use super::*;
use crate::secret::SecretBytes;
use crate::tenant::TenantId;

fn key(version: u32) -> DataKey {
    DataKey {
        version,
        key: SecretBytes::new(vec![7; 32]),
    }
}

fn object(tenant: TenantId) -> ObjectRef<'static> {
    ObjectRef {
        tenant,
        kind: "blob",
        id: "b-1",
        version: 1,
    }
}

/// Seals with 4 KiB chunks (so tests cross many boundaries cheaply).
fn seal_small(k: &DataKey, o: &ObjectRef<'_>, data: &[u8]) -> Vec<u8> {
    let (mut s, mut out) = Sealer::with_chunk_log2(k, o, 12).unwrap();
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![]
    } else {
        data.chunks(4096).collect()
    };
    let full_last = !data.is_empty() && data.len().is_multiple_of(4096);
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len() && !full_last;
        let mut b = c.to_vec();
        s.seal_chunk(&mut b, last).unwrap();
        out.extend_from_slice(&b);
    }
    if data.is_empty() || full_last {
        let mut b = Vec::new();
        s.seal_chunk(&mut b, true).unwrap();
        out.extend_from_slice(&b);
    }
    out
}

fn open_all(k: &DataKey, o: &ObjectRef<'_>, sealed: &[u8]) -> Result<Vec<u8>, StreamError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = sealed;
        let header = read_header(&mut r).await?;
        let mut out = Vec::new();
        open_to(k, o, &header, &mut r, &mut out).await?;
        Ok(out)
    })
}

fn chunks_of(sealed: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (h, body) = sealed.split_at(HEADER_LEN);
    (
        h.to_vec(),
        body.chunks(4096 + TAG_LEN).map(<[u8]>::to_vec).collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trips_at_and_around_chunk_boundaries(len in prop_oneof![0usize..10, 4090usize..4100, 8186usize..8200, 0usize..40_000]) {
        let data: Vec<u8> = (0..len).map(|i| ((i * 31) % 251).to_le_bytes()[0]).collect();
        let t = TenantId::generate();
        let sealed = seal_small(&key(1), &object(t), &data);
        prop_assert_eq!(open_all(&key(1), &object(t), &sealed).unwrap(), data);
    }

    #[test]
    fn any_single_bit_flip_is_detected(len in 1usize..12_000, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let t = TenantId::generate();
        let mut sealed = seal_small(&key(1), &object(t), &vec![0x42; len]);
        let i = pos.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(open_all(&key(1), &object(t), &sealed).is_err());
    }

    #[test]
    fn any_truncation_is_detected(len in 0usize..12_000, cut in any::<prop::sample::Index>()) {
        let t = TenantId::generate();
        let sealed = seal_small(&key(1), &object(t), &vec![0x42; len]);
        let keep = cut.index(sealed.len());
        prop_assert!(open_all(&key(1), &object(t), &sealed[..keep]).is_err());
    }
}

#[test]
fn reordered_dropped_and_duplicated_chunks_are_detected() {
    let t = TenantId::generate();
    let sealed = seal_small(&key(1), &object(t), &vec![1u8; 4096 * 3 + 100]);
    let (h, c) = chunks_of(&sealed);
    assert_eq!(c.len(), 4);
    let variants: Vec<Vec<usize>> = vec![
        vec![1, 0, 2, 3],
        vec![0, 2, 1, 3],
        vec![0, 1, 3],
        vec![0, 1, 2],
        vec![0, 0, 1, 2, 3],
        vec![0, 1, 2, 3, 3],
    ];
    for order in variants {
        let mut s = h.clone();
        for i in &order {
            s.extend_from_slice(&c[*i]);
        }
        assert!(
            open_all(&key(1), &object(t), &s).is_err(),
            "order {order:?} accepted"
        );
    }
    assert!(open_all(&key(1), &object(t), &sealed).is_ok());
}

#[test]
fn a_stream_cut_at_a_chunk_boundary_is_detected() {
    let t = TenantId::generate();
    let sealed = seal_small(&key(1), &object(t), &vec![1u8; 4096 * 2]);
    let (h, c) = chunks_of(&sealed);
    assert_eq!(
        c.len(),
        3,
        "a full final chunk is followed by an empty last chunk"
    );
    let cut = [h, c[0].clone(), c[1].clone()].concat();
    assert!(open_all(&key(1), &object(t), &cut).is_err());
}

#[test]
fn streams_are_bound_to_tenant_object_version_and_key() {
    let t = TenantId::generate();
    let sealed = seal_small(&key(1), &object(t), b"attachment body");
    assert!(
        open_all(&key(1), &object(TenantId::generate()), &sealed).is_err(),
        "other tenant"
    );
    assert!(
        open_all(
            &key(1),
            &ObjectRef {
                id: "b-2",
                ..object(t)
            },
            &sealed
        )
        .is_err(),
        "other id"
    );
    assert!(
        open_all(
            &key(1),
            &ObjectRef {
                version: 2,
                ..object(t)
            },
            &sealed
        )
        .is_err(),
        "other version"
    );
    assert!(
        open_all(
            &key(1),
            &ObjectRef {
                kind: "backup",
                ..object(t)
            },
            &sealed
        )
        .is_err(),
        "other kind"
    );
    let other_key = DataKey {
        version: 1,
        key: SecretBytes::new(vec![8; 32]),
    };
    assert!(
        open_all(&other_key, &object(t), &sealed).is_err(),
        "other key"
    );
    let mut relabelled = sealed.clone();
    relabelled[5] = 2; // claims key version 2
    assert!(
        open_all(&key(2), &object(t), &relabelled).is_err(),
        "header is authenticated"
    );
}

#[tokio::test]
async fn seal_to_and_open_to_stream_large_objects() {
    let t = TenantId::generate();
    let data: Vec<u8> = (0..(3 * 65_536 + 17_u32))
        .map(|i| i.to_le_bytes()[0])
        .collect();
    let mut sealed = Vec::new();
    let n = seal_to(&key(3), &object(t), &mut data.as_slice(), &mut sealed)
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(sealed.len(), HEADER_LEN + data.len() + 4 * TAG_LEN);
    let mut r = sealed.as_slice();
    let header = read_header(&mut r).await.unwrap();
    assert_eq!(key_version(&header).unwrap(), 3);
    let mut out = Vec::new();
    open_to(&key(3), &object(t), &header, &mut r, &mut out)
        .await
        .unwrap();
    assert_eq!(out, data);
}
