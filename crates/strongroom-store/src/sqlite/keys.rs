//! The key port on SQLite: tenant KEKs and DEKs in a region database. Every statement
//! binds `tenant_id` from a [`TenantScope`].

use async_trait::async_trait;
use strongroom_core::access::TenantScope;
use strongroom_core::store::{
    AuditEvent, KeyStore, PendingWork, StoreError, StoredDek, StoredKek, TenantKeys,
};

use super::{Connection, SqliteStore, int, query, query_scalar, tid, u32_col, u64_col};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

pub(super) fn insert_keks_and_deks(
    tx: &Connection,
    scope: &TenantScope,
    keys: &TenantKeys,
) -> Result<(), StoreError> {
    for k in &keys.keks {
        insert_kek(tx, scope, k)?;
    }
    for d in &keys.deks {
        insert_dek(tx, scope, d)?;
    }
    Ok(())
}

fn insert_kek(tx: &Connection, scope: &TenantScope, k: &StoredKek) -> Result<(), StoreError> {
    query("INSERT INTO tenant_keks (tenant_id, version, provider, wrapped, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(i64::from(k.version))
        .bind(&k.provider)
        .bind(&k.wrapped)
        .bind(to_micros(k.created_at))
        .execute(tx)
        .map_err(|e| map(e, "key-encryption key version"))?;
    Ok(())
}

fn insert_dek(tx: &Connection, scope: &TenantScope, d: &StoredDek) -> Result<(), StoreError> {
    query("INSERT INTO data_keys (tenant_id, version, kek_version, wrapped, created_at, seals_reserved) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(i64::from(d.version))
        .bind(i64::from(d.kek_version))
        .bind(&d.wrapped)
        .bind(to_micros(d.created_at))
        .bind(int(d.seals_reserved)?)
        .execute(tx)
        .map_err(|e| map(e, "data key version"))?;
    Ok(())
}

/// Fails when the tenant's keys were destroyed: nothing may be added after shredding.
pub(super) fn require_live(tx: &Connection, scope: &TenantScope) -> Result<(), StoreError> {
    let live: Option<i64> = query_scalar(
        "SELECT COUNT(*) FROM tenant_homes WHERE tenant_id = ? AND keys_destroyed_at IS NULL",
    )
    .bind(tid(scope))
    .fetch_optional(tx)
    .map_err(db)?;
    if live == Some(1) {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            what: "destroyed tenant keys",
        })
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn tenant_keys(&self, scope: &TenantScope) -> Result<TenantKeys, StoreError> {
        // One statement, so one consistent snapshot (a concurrent KEK rotation is seen
        // entirely or not at all) without a read transaction: this runs for every seal
        // and every open. Columns by kind: 0 (home) `version` holds
        // keys_destroyed_at; 1 (KEK) `owner` is the provider; 2 (DEK) `owner` is the
        // wrapping KEK's version.
        let rows = query(
            "SELECT 0 AS kind, keys_destroyed_at AS version, NULL AS owner, NULL AS wrapped, NULL AS created_at, NULL AS seals_reserved FROM tenant_homes WHERE tenant_id = ?1 \
             UNION ALL SELECT 1, version, provider, wrapped, created_at, NULL FROM tenant_keks WHERE tenant_id = ?1 \
             UNION ALL SELECT 2, version, kek_version, wrapped, created_at, seals_reserved FROM data_keys WHERE tenant_id = ?1 \
             ORDER BY kind, version",
        )
        .bind(tid(scope))
        .fetch_all(self.region(scope)?.read()?)
        .map_err(db)?;
        let (mut keks, mut deks, mut destroyed) = (Vec::new(), Vec::new(), None);
        for r in &rows {
            match r.try_get::<i64, _>("kind").map_err(db)? {
                0 => destroyed = r.try_get::<Option<i64>, _>("version").map_err(db)?,
                1 => keks.push(StoredKek {
                    version: u32_col(r, "version")?,
                    provider: r.try_get("owner").map_err(db)?,
                    wrapped: r.try_get("wrapped").map_err(db)?,
                    created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
                }),
                _ => deks.push(StoredDek {
                    version: u32_col(r, "version")?,
                    kek_version: u32_col(r, "owner")?,
                    wrapped: r.try_get("wrapped").map_err(db)?,
                    created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
                    seals_reserved: u64_col(r, "seals_reserved")?,
                }),
            }
        }
        Ok(TenantKeys {
            keks,
            deks,
            destroyed_at: destroyed.map(from_micros).transpose()?,
        })
    }

    async fn add_data_key(
        &self,
        scope: &TenantScope,
        d: &StoredDek,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, d, audit) = (scope.clone(), d.clone(), audit.clone());
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                insert_dek(tx, &scope, &d)?;
                // Objects under the older keys are now to be moved to this one.
                super::directory::mark_pending(
                    tx,
                    &scope,
                    PendingWork::Reencrypt,
                    u64::from(d.version),
                )?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn replace_kek(
        &self,
        scope: &TenantScope,
        kek: &StoredKek,
        rewrapped: &[StoredDek],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, kek, rewrapped, audit) = (
            scope.clone(),
            kek.clone(),
            rewrapped.to_vec(),
            audit.clone(),
        );
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                insert_kek(tx, &scope, &kek)?;
                for d in &rewrapped {
                    let done = query(
                        "UPDATE data_keys SET kek_version = ?, wrapped = ? WHERE tenant_id = ? AND version = ?",
                    )
                    .bind(i64::from(d.kek_version))
                    .bind(&d.wrapped)
                    .bind(tid(&scope))
                    .bind(i64::from(d.version))
                    .execute(tx)
                    .map_err(db)?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::Conflict {
                            what: "data key set changed during KEK rotation; retry",
                        });
                    }
                }
                // Every data key must now be wrapped by the new KEK, or the old KEK cannot go.
                let stale: i64 = query_scalar(
                    "SELECT COUNT(*) FROM data_keys WHERE tenant_id = ? AND kek_version <> ?",
                )
                .bind(tid(&scope))
                .bind(i64::from(kek.version))
                .fetch_one(tx)
                .map_err(db)?;
                if stale != 0 {
                    return Err(StoreError::Conflict {
                        what: "data key set changed during KEK rotation; retry",
                    });
                }
                query("DELETE FROM tenant_keks WHERE tenant_id = ? AND version <> ?")
                    .bind(tid(&scope))
                    .bind(i64::from(kek.version))
                    .execute(tx)
                    .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn reserve_seals(
        &self,
        scope: &TenantScope,
        version: u32,
        n: u64,
    ) -> Result<u64, StoreError> {
        let region = self.region(scope)?;
        let (tenant, n) = (tid(scope), int(n)?);
        let total: Option<i64> = region
            .write(move |tx| {
                query_scalar(
                    "UPDATE data_keys SET seals_reserved = seals_reserved + ? WHERE tenant_id = ? AND version = ? RETURNING seals_reserved",
                )
                .bind(n)
                .bind(&tenant)
                .bind(i64::from(version))
                .fetch_optional(tx)
                .map_err(db)
            })
            .await?;
        let total = total.ok_or(StoreError::Conflict {
            what: "destroyed tenant keys",
        })?;
        u64::try_from(total).map_err(|_| StoreError::Corrupt(format!("seals_reserved = {total}")))
    }

    async fn destroy_tenant_keys(
        &self,
        scope: &TenantScope,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, audit) = (scope.clone(), audit.clone());
        region
            .write(move |tx| {
                for sql in [
                    "DELETE FROM data_keys WHERE tenant_id = ?",
                    "DELETE FROM tenant_keks WHERE tenant_id = ?",
                ] {
                    query(sql).bind(tid(&scope)).execute(tx).map_err(db)?;
                }
                query("UPDATE tenant_homes SET keys_destroyed_at = COALESCE(keys_destroyed_at, ?) WHERE tenant_id = ?")
                    .bind(to_micros(audit.at))
                    .bind(tid(&scope))
                    .execute(tx)
                    .map_err(db)?;
                super::audit::erase_all_subjects(tx, &scope, audit.at)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await?;
        region.purge_log().await
    }
}
