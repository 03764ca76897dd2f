//! The storage conformance suite on SQLite, and what only SQLite's adapter promises.

use std::collections::BTreeMap;

use async_trait::async_trait;
use strongroom_core::access::TenantScope;
use strongroom_core::store::Store;
use strongroom_core::tenant::Tenant;

use super::*;
use crate::conformance::{Backend, conformance};

/// A fresh SQLite store in a temporary directory.
struct Sqlite {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Backend for Sqlite {
    async fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let regions: BTreeMap<RegionName, PathBuf> = ["eu", "us"]
            .iter()
            .map(|r| {
                (
                    RegionName::parse(r).unwrap(),
                    dir.path().join("regions").join(r),
                )
            })
            .collect();
        let store = SqliteStore::open(&dir.path().join("control.db"), &regions)
            .await
            .unwrap();
        Self { store, _dir: dir }
    }

    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn break_audit_appends(&self, scope: &TenantScope) {
        // A temporary trigger lives on the connection that made it: the single writer.
        self.store
            .region(scope)
            .unwrap()
            .write(|tx| {
                query("CREATE TEMP TRIGGER inject_failure BEFORE INSERT ON main.audit_entries BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END")
                    .execute(tx)
                    .map_err(db)
                    .map(|_| ())
            })
            .await
            .unwrap();
    }

    async fn rewrite_audit(&self, scope: &TenantScope) -> Vec<Option<String>> {
        let region = self.store.region(scope).unwrap();
        let mut refused = Vec::new();
        for sql in [
            "UPDATE audit_entries SET action = 'x'",
            "DELETE FROM audit_entries",
        ] {
            refused.push(
                region
                    .write(move |tx| query(sql).execute(tx).map_err(db).map(|_| ()))
                    .await
                    .err()
                    .map(|e| {
                        format!(
                            "{e} {:?}",
                            std::error::Error::source(&e).map(ToString::to_string)
                        )
                    }),
            );
        }
        refused
    }

    async fn occupy_home(&self, tenant: &Tenant) {
        let db_ = self.store.regions.get(&tenant.region).unwrap();
        let (id, slug) = (
            tenant.id.as_uuid().to_string(),
            tenant.slug.as_str().to_owned(),
        );
        db_.write(move |tx| {
            query("INSERT INTO tenant_homes (tenant_id, slug, created_at) VALUES (?, ?, 0)")
                .bind(&id)
                .bind(&slug)
                .execute(tx)
                .map_err(db)
                .map(|_| ())
        })
        .await
        .unwrap();
    }
}

conformance!(Sqlite);

/// No SQL in this crate updates or deletes audit entries.
#[test]
fn no_statement_touches_audit_entries_except_insert_and_select() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut stack = vec![std::path::PathBuf::from(src)];
    let mut checked = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                let text = std::fs::read_to_string(&p).unwrap().to_uppercase();
                checked += 1;
                for bad in [
                    "UPDATE AUDIT_ENTRIES",
                    "DELETE FROM AUDIT_ENTRIES",
                    "REPLACE INTO AUDIT_ENTRIES",
                    "DROP TRIGGER",
                ] {
                    assert!(!text.contains(bad), "{} contains {bad}", p.display());
                }
            }
        }
    }
    assert!(checked > 5);
}

/// The pending-work index: an append marks its tenant, a clear only removes a mark it
/// has caught up with, a new data key marks re-encryption, and a value sealed under an
/// older key after that mark was cleared marks it again (so it is not left behind).
#[tokio::test]
#[allow(clippy::too_many_lines)] // one story, told in order
async fn pending_work_marks_are_written_with_the_work_and_cleared_only_when_caught_up() {
    use strongroom_core::access::{self, PlatformAction};
    use strongroom_core::store::{PendingWork, StoredDek, StoredKek, StoredSealed, TenantKeys};

    use crate::conformance::{ev, now, platform, tenant};

    let b = Sqlite::fresh().await;
    let s = b.store();
    let (busy, idle) = (tenant("busy", "eu"), tenant("idle", "us"));
    let scope = platform(PlatformAction::ManageTenants);
    let kek = StoredKek {
        version: 1,
        provider: "local".into(),
        wrapped: vec![1; 60],
        created_at: now(),
    };
    let dek = |version: u32| StoredDek {
        version,
        kek_version: 1,
        wrapped: vec![2; 60],
        created_at: now(),
        seals_reserved: 0,
    };
    let keys = TenantKeys {
        keks: vec![kek],
        deks: vec![dek(1)],
        destroyed_at: None,
    };
    let mut homes = Vec::new();
    for t in [&busy, &idle] {
        let home = access::provisioning_scope(&scope, t);
        s.create_tenant(&scope, t, &home, &keys, &ev(), &ev())
            .await
            .unwrap();
        homes.push(home);
    }
    let (busy_home, idle_home) = (&homes[0], &homes[1]);
    let pending = |kind| async move { s.pending_work(kind, now()).await.unwrap().unwrap() };
    // Creation appended one entry to each tenant's trail.
    assert_eq!(pending(PendingWork::Audit).await.len(), 2);
    assert!(pending(PendingWork::Reencrypt).await.is_empty());
    for home in [busy_home, idle_home] {
        s.work_done(home, PendingWork::Audit, 1).await.unwrap();
    }
    assert!(pending(PendingWork::Audit).await.is_empty());

    // Two more entries; a clear that has caught up with only one leaves the mark.
    s.add_data_key(busy_home, &dek(2), &ev()).await.unwrap();
    let sealed = |dek_version| StoredSealed {
        id: "smtp".into(),
        version: 1,
        dek_version,
        sealed: vec![3; 48],
    };
    s.put_sealed(busy_home, "tenant-secret", &sealed(2), 0, &ev())
        .await
        .unwrap();
    s.work_done(busy_home, PendingWork::Audit, 2).await.unwrap();
    assert_eq!(
        pending(PendingWork::Audit)
            .await
            .into_iter()
            .collect::<Vec<_>>(),
        [busy.id]
    );
    s.work_done(busy_home, PendingWork::Audit, 3).await.unwrap();
    assert!(pending(PendingWork::Audit).await.is_empty());

    // The new data key marked re-encryption up to version 2; a round against version
    // 1 does not clear it, one against version 2 does.
    assert_eq!(
        pending(PendingWork::Reencrypt)
            .await
            .into_iter()
            .collect::<Vec<_>>(),
        [busy.id]
    );
    s.work_done(busy_home, PendingWork::Reencrypt, 1)
        .await
        .unwrap();
    assert_eq!(pending(PendingWork::Reencrypt).await.len(), 1);
    s.work_done(busy_home, PendingWork::Reencrypt, 2)
        .await
        .unwrap();
    assert!(pending(PendingWork::Reencrypt).await.is_empty());
    // A value sealed under key 1 (chosen before the rotation) lands afterwards: marked.
    s.put_sealed(busy_home, "tenant-secret", &sealed(1), 1, &ev())
        .await
        .unwrap();
    assert_eq!(pending(PendingWork::Reencrypt).await.len(), 1);
    // A value under the newest key marks nothing; "done up to anything" clears.
    s.work_done(busy_home, PendingWork::Reencrypt, u64::MAX)
        .await
        .unwrap();
    s.put_sealed(idle_home, "tenant-secret", &sealed(1), 0, &ev())
        .await
        .unwrap();
    assert!(pending(PendingWork::Reencrypt).await.is_empty());
}
