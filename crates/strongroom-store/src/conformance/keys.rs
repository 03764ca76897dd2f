//! Conformance of the key and object ports: wrapped keys, seal budgets, shredding, and
//! compare-and-swap writes of sealed values and blob metadata.

use strongroom_core::access::{self, PlatformAction};
use strongroom_core::audit::entry::Action;
use strongroom_core::store::{
    StoreError, StoredBlob, StoredDek, StoredKek, StoredSealed, TenantKeys,
};

use super::{Backend, create, ev, event_at, now, platform, tenant};

fn value(version: u64, dek: u32, byte: u8) -> StoredSealed {
    StoredSealed {
        id: "smtp".into(),
        version,
        dek_version: dek,
        sealed: vec![byte; 48],
    }
}

/// A sealed write succeeds only against the version it read; re-encryption likewise.
pub(crate) async fn sealed_writes_are_compare_and_swap<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("cas", "eu")).await;
    let kind = "tenant-secret";
    assert!(
        s.put_sealed(&home, kind, &value(1, 1, 1), 0, &ev())
            .await
            .unwrap()
    );
    assert!(
        !s.put_sealed(&home, kind, &value(1, 1, 9), 0, &ev())
            .await
            .unwrap(),
        "stale"
    );
    assert!(
        s.put_sealed(&home, kind, &value(2, 1, 2), 1, &ev())
            .await
            .unwrap()
    );
    let current = s.sealed(&home, kind, "smtp").await.unwrap().unwrap();
    assert_eq!((current.version, current.sealed[0]), (2, 2));
    assert!(
        s.sealed(&home, "user-mfa", "smtp").await.unwrap().is_none(),
        "kinds apart"
    );
    let old = s.sealed_before(&home, kind, 2, 10).await.unwrap();
    assert_eq!(old.len(), 1);
    let resealed = value(2, 2, 3);
    let entries = s.audit_len(&home).await.unwrap();
    assert!(
        s.reseal(&home, kind, &old[0], &resealed, &ev())
            .await
            .unwrap()
    );
    assert!(
        !s.reseal(&home, kind, &old[0], &resealed, &ev())
            .await
            .unwrap(),
        "moved on"
    );
    assert_eq!(
        s.audit_len(&home).await.unwrap(),
        entries + 1,
        "audited only when it happened"
    );
    assert!(
        s.sealed_before(&home, kind, 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let blob = StoredBlob {
        id: "b1".into(),
        dek_version: 1,
        size: 10,
        file: "f1".into(),
    };
    s.insert_blob(&home.writable().unwrap(), &blob, &ev())
        .await
        .unwrap();
    let moved = StoredBlob {
        dek_version: 2,
        file: "f2".into(),
        ..blob.clone()
    };
    let entries = s.audit_len(&home).await.unwrap();
    assert!(s.reseal_blob(&home, &blob, &moved, &ev()).await.unwrap());
    assert!(!s.reseal_blob(&home, &blob, &moved, &ev()).await.unwrap());
    assert_eq!(s.audit_len(&home).await.unwrap(), entries + 1);
    assert_eq!(s.blob(&home, "b1").await.unwrap().unwrap().file, "f2");
    assert!(s.blobs_before(&home, 2, 10).await.unwrap().is_empty());
}

fn keys() -> TenantKeys {
    TenantKeys {
        keks: vec![StoredKek {
            version: 1,
            provider: "local".into(),
            wrapped: vec![1; 60],
            created_at: now(),
        }],
        deks: vec![dek(1)],
        destroyed_at: None,
    }
}

fn dek(version: u32) -> StoredDek {
    StoredDek {
        version,
        kek_version: 1,
        wrapped: vec![u8::try_from(version).unwrap(); 60],
        created_at: now(),
        seals_reserved: 0,
    }
}

/// A data key version exists once; budgets add up; shredding leaves no key.
pub(crate) async fn data_keys_conflict_on_the_same_version_and_shredding_destroys_them<
    B: Backend,
>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("keyed", "eu");
    let scope = platform(PlatformAction::ManageTenants);
    let home = access::provisioning_scope(&scope, &t);
    s.create_tenant(&scope, &t, &home, &keys(), &ev(), &ev())
        .await
        .unwrap();
    s.add_data_key(&home, &dek(2), &ev()).await.unwrap();
    assert!(matches!(
        s.add_data_key(&home, &dek(2), &ev()).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.reserve_seals(&home, 2, 100).await.unwrap(), 100);
    assert_eq!(s.reserve_seals(&home, 2, 50).await.unwrap(), 150);
    let stored = s.tenant_keys(&home).await.unwrap();
    assert_eq!(
        stored.deks.iter().map(|d| d.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let mut shred = event_at(Action::KeyShred, now());
    shred.entry.reason = Some("contract ended".into());
    s.destroy_tenant_keys(&home, &shred).await.unwrap();
    let gone = s.tenant_keys(&home).await.unwrap();
    assert!(gone.keks.is_empty() && gone.deks.is_empty());
    assert!(gone.destroyed_at.is_some());
}
