use proptest::prelude::*;

use super::sealed::*;
use super::*;
use crate::secret::SecretBytes;
use crate::tenant::TenantId;

fn key(version: u32, byte: u8) -> DataKey {
    DataKey {
        version,
        key: SecretBytes::new(vec![byte; 32]),
    }
}

proptest! {
    #[test]
    fn values_round_trip(data in prop::collection::vec(any::<u8>(), 0..5000), version in 1u32..10) {
        let t = TenantId::generate();
        let o = ObjectRef { tenant: t, kind: "tenant-secret", id: "webhook", version: 1 };
        let k = key(version, 3);
        let sealed = seal(&k, &o, &data).unwrap();
        prop_assert_eq!(sealed.len(), data.len() + OVERHEAD);
        prop_assert_eq!(key_version(&sealed).unwrap(), version);
        let opened = open(&k, &o, &sealed).unwrap();
        prop_assert_eq!(&opened[..], &data[..]);
    }

    #[test]
    fn any_bit_flip_fails(data in prop::collection::vec(any::<u8>(), 1..500), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let t = TenantId::generate();
        let o = ObjectRef { tenant: t, kind: "tenant-secret", id: "webhook", version: 1 };
        let mut sealed = seal(&key(1, 3), &o, &data).unwrap();
        let i = pos.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(open(&key(1, 3), &o, &sealed).is_err());
    }
}

#[test]
fn values_moved_between_rows_tenants_or_versions_fail_to_open() {
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let k = key(1, 9);
    let o = ObjectRef {
        tenant: a,
        kind: "record",
        id: "r-1",
        version: 1,
    };
    let sealed = seal(&k, &o, b"batch 42 released").unwrap();
    assert!(open(&k, &o, &sealed).is_ok());
    for other in [
        ObjectRef { id: "r-2", ..o },
        ObjectRef { tenant: b, ..o },
        ObjectRef { version: 2, ..o },
        ObjectRef {
            kind: "attachment",
            ..o
        },
    ] {
        assert!(
            matches!(open(&k, &other, &sealed), Err(KeyError::Integrity)),
            "{other:?}"
        );
    }
    assert!(
        matches!(open(&key(1, 8), &o, &sealed), Err(KeyError::Integrity)),
        "other key"
    );
    assert!(open(&key(2, 9), &o, &sealed).is_err(), "version mismatch");
    assert!(open(&k, &o, &sealed[..OVERHEAD - 1]).is_err());
}
