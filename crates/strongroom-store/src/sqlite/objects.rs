//! The object port on SQLite: sealed values and blob metadata in a region database.
//! Every statement binds `tenant_id` from a [`TenantScope`]; writes are compare-and-swap
//! on the version (or file) the caller read.

use async_trait::async_trait;
use strongroom_core::access::{TenantScope, WritableScope};
use strongroom_core::store::{AuditEvent, ObjectStore, StoreError, StoredBlob, StoredSealed};

use super::keys::require_live;
use super::{SqliteRow, SqliteStore, int, query, tid, u32_col, u64_col};
use crate::error::{db, map};

fn sealed_from_row(r: &SqliteRow) -> Result<StoredSealed, StoreError> {
    Ok(StoredSealed {
        id: r.try_get("id").map_err(db)?,
        version: u64_col(r, "version")?,
        dek_version: u32_col(r, "dek_version")?,
        sealed: r.try_get("sealed").map_err(db)?,
    })
}

fn blob_from_row(r: &SqliteRow) -> Result<StoredBlob, StoreError> {
    Ok(StoredBlob {
        id: r.try_get("id").map_err(db)?,
        dek_version: u32_col(r, "dek_version")?,
        size: u64_col(r, "size")?,
        file: r.try_get("file").map_err(db)?,
    })
}

#[async_trait]
impl ObjectStore for SqliteStore {
    async fn put_sealed(
        &self,
        scope: &TenantScope,
        kind: &str,
        v: &StoredSealed,
        expected: u64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, kind, v, audit) = (scope.clone(), kind.to_owned(), v.clone(), audit.clone());
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                let done = if expected == 0 {
                    query("INSERT INTO sealed_values (tenant_id, kind, id, version, dek_version, sealed) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
                        .bind(tid(&scope))
                        .bind(&kind)
                        .bind(&v.id)
                        .bind(int(v.version)?)
                        .bind(i64::from(v.dek_version))
                        .bind(&v.sealed)
                        .execute(tx)
                } else {
                    query("UPDATE sealed_values SET version = ?, dek_version = ?, sealed = ? WHERE tenant_id = ? AND kind = ? AND id = ? AND version = ?")
                        .bind(int(v.version)?)
                        .bind(i64::from(v.dek_version))
                        .bind(&v.sealed)
                        .bind(tid(&scope))
                        .bind(&kind)
                        .bind(&v.id)
                        .bind(int(expected)?)
                        .execute(tx)
                }
                .map_err(db)?;
                let written = done.rows_affected() == 1;
                if written {
                    super::directory::mark_if_stale(tx, &scope, v.dek_version)?;
                    super::audit::append(tx, &scope, &audit)?;
                }
                Ok(written)
            })
            .await
    }

    async fn sealed(
        &self,
        scope: &TenantScope,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredSealed>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT id, version, dek_version, sealed FROM sealed_values WHERE tenant_id = ? AND kind = ? AND id = ?")
            .bind(tid(scope))
            .bind(kind)
            .bind(id)
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(sealed_from_row)
            .transpose()
    }

    async fn sealed_before(
        &self,
        scope: &TenantScope,
        kind: &str,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredSealed>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT id, version, dek_version, sealed FROM sealed_values WHERE tenant_id = ? AND kind = ? AND dek_version < ? ORDER BY id LIMIT ?")
            .bind(tid(scope))
            .bind(kind)
            .bind(i64::from(current))
            .bind(i64::from(limit))
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(sealed_from_row)
            .collect()
    }

    async fn reseal(
        &self,
        scope: &TenantScope,
        kind: &str,
        old: &StoredSealed,
        new: &StoredSealed,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, kind, old, new, audit) = (
            scope.clone(),
            kind.to_owned(),
            old.clone(),
            new.clone(),
            audit.clone(),
        );
        region
            .write(move |tx| {
                let done = query("UPDATE sealed_values SET dek_version = ?, sealed = ? WHERE tenant_id = ? AND kind = ? AND id = ? AND version = ? AND dek_version = ?")
                    .bind(i64::from(new.dek_version))
                    .bind(&new.sealed)
                    .bind(tid(&scope))
                    .bind(&kind)
                    .bind(&old.id)
                    .bind(int(old.version)?)
                    .bind(i64::from(old.dek_version))
                    .execute(tx)
                    .map_err(db)?;
                // (tenant_id, kind, id) is the key: the update changed one row or none,
                // so when it changed none nothing was written and `Ok` keeps nothing.
                super::audit::append_if(tx, done.rows_affected() == 1, &scope, &audit)
            })
            .await
    }

    async fn insert_blob(
        &self,
        scope: &WritableScope,
        b: &StoredBlob,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, b, audit) = (scope.clone(), b.clone(), audit.clone());
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                query(
                    "INSERT INTO blobs (tenant_id, id, dek_version, size, file) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(tid(&scope))
                .bind(&b.id)
                .bind(i64::from(b.dek_version))
                .bind(int(b.size)?)
                .bind(&b.file)
                .execute(tx)
                .map_err(|e| map(e, "blob id"))?;
                super::directory::mark_if_stale(tx, &scope, b.dek_version)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn blob(&self, scope: &TenantScope, id: &str) -> Result<Option<StoredBlob>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT id, dek_version, size, file FROM blobs WHERE tenant_id = ? AND id = ?")
            .bind(tid(scope))
            .bind(id)
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(blob_from_row)
            .transpose()
    }

    async fn blobs_before(
        &self,
        scope: &TenantScope,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredBlob>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT id, dek_version, size, file FROM blobs WHERE tenant_id = ? AND dek_version < ? ORDER BY id LIMIT ?")
            .bind(tid(scope))
            .bind(i64::from(current))
            .bind(i64::from(limit))
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(blob_from_row)
            .collect()
    }

    async fn reseal_blob(
        &self,
        scope: &TenantScope,
        old: &StoredBlob,
        new: &StoredBlob,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, old, new, audit) = (scope.clone(), old.clone(), new.clone(), audit.clone());
        region
            .write(move |tx| {
                let done = query("UPDATE blobs SET dek_version = ?, file = ?, size = ? WHERE tenant_id = ? AND id = ? AND file = ? AND dek_version = ?")
                    .bind(i64::from(new.dek_version))
                    .bind(&new.file)
                    .bind(int(new.size)?)
                    .bind(tid(&scope))
                    .bind(&old.id)
                    .bind(&old.file)
                    .bind(i64::from(old.dek_version))
                    .execute(tx)
                    .map_err(db)?;
                // (tenant_id, id) is the key: the update changed one row or none, so when
                // it changed none nothing was written and `Ok` keeps nothing.
                super::audit::append_if(tx, done.rows_affected() == 1, &scope, &audit)
            })
            .await
    }
}
