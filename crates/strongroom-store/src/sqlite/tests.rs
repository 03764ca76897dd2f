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
        let mut tx = self.store.region(scope).unwrap().write().await.unwrap();
        sqlx::query("CREATE TEMP TRIGGER inject_failure BEFORE INSERT ON main.audit_entries BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn rewrite_audit(&self, scope: &TenantScope) -> Vec<Option<String>> {
        let region = self.store.region(scope).unwrap();
        let mut refused = Vec::new();
        for sql in [
            "UPDATE audit_entries SET action = 'x'",
            "DELETE FROM audit_entries",
        ] {
            let mut tx = region.write().await.unwrap();
            refused.push(
                sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .err()
                    .map(|e| e.to_string()),
            );
        }
        refused
    }

    async fn occupy_home(&self, tenant: &Tenant) {
        let db = self.store.regions.get(&tenant.region).unwrap();
        let mut tx = db.write().await.unwrap();
        sqlx::query("INSERT INTO tenant_homes (tenant_id, slug, created_at) VALUES (?, ?, 0)")
            .bind(tenant.id.as_uuid().to_string())
            .bind(tenant.slug.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
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
