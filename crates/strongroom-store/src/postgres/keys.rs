//! The key port on PostgreSQL: tenant KEKs and DEKs in a region database. Every statement
//! binds `tenant_id` from a [`TenantScope`].

use async_trait::async_trait;
use sqlx::Row;
use strongroom_core::access::TenantScope;
use strongroom_core::store::{AuditEvent, KeyStore, StoreError, StoredDek, StoredKek, TenantKeys};

use super::{PgStore, Tx, int, tid, u32_col, u64_col};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

pub(super) async fn insert_keks_and_deks(
    tx: &mut Tx,
    scope: &TenantScope,
    keys: &TenantKeys,
) -> Result<(), StoreError> {
    for k in &keys.keks {
        insert_kek(tx, scope, k).await?;
    }
    for d in &keys.deks {
        insert_dek(tx, scope, d).await?;
    }
    Ok(())
}

async fn insert_kek(tx: &mut Tx, scope: &TenantScope, k: &StoredKek) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO tenant_keks (tenant_id, version, provider, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(tid(scope))
        .bind(i64::from(k.version))
        .bind(&k.provider)
        .bind(&k.wrapped)
        .bind(to_micros(k.created_at))
        .execute(&mut **tx)
        .await
        .map_err(|e| map(e, "key-encryption key version"))?;
    Ok(())
}

async fn insert_dek(tx: &mut Tx, scope: &TenantScope, d: &StoredDek) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO data_keys (tenant_id, version, kek_version, wrapped, created_at, seals_reserved) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(tid(scope))
        .bind(i64::from(d.version))
        .bind(i64::from(d.kek_version))
        .bind(&d.wrapped)
        .bind(to_micros(d.created_at))
        .bind(int(d.seals_reserved)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| map(e, "data key version"))?;
    Ok(())
}

/// Fails when the tenant's keys were destroyed: nothing may be added after shredding.
pub(super) async fn require_live(tx: &mut Tx, scope: &TenantScope) -> Result<(), StoreError> {
    let live: Option<i64> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tenant_homes WHERE tenant_id = $1 AND keys_destroyed_at IS NULL",
    )
    .bind(tid(scope))
    .fetch_optional(&mut **tx)
    .await
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
impl KeyStore for PgStore {
    async fn tenant_keys(&self, scope: &TenantScope) -> Result<TenantKeys, StoreError> {
        // One statement, so one snapshot (a concurrent KEK rotation is seen entirely or
        // not at all) in four round trips instead of six: this runs for every seal and
        // every open. Columns by kind: 0 (home) `version` holds keys_destroyed_at.
        let mut tx = self.read(scope).await?;
        let rows = sqlx::query(
            "SELECT 0 AS kind, keys_destroyed_at AS version, NULL::text AS provider, NULL::bigint AS kek_version, NULL::bytea AS wrapped, NULL::bigint AS created_at, NULL::bigint AS seals_reserved FROM tenant_homes WHERE tenant_id = $1 \
             UNION ALL SELECT 1, version, provider, NULL, wrapped, created_at, NULL FROM tenant_keks WHERE tenant_id = $1 \
             UNION ALL SELECT 2, version, NULL, kek_version, wrapped, created_at, seals_reserved FROM data_keys WHERE tenant_id = $1 \
             ORDER BY kind, version",
        )
        .bind(tid(scope))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let (mut keks, mut deks, mut destroyed) = (Vec::new(), Vec::new(), None);
        for r in &rows {
            match r.try_get::<i32, _>("kind").map_err(db)? {
                0 => destroyed = r.try_get::<Option<i64>, _>("version").map_err(db)?,
                1 => keks.push(StoredKek {
                    version: u32_col(r, "version")?,
                    provider: r.try_get("provider").map_err(db)?,
                    wrapped: r.try_get("wrapped").map_err(db)?,
                    created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
                }),
                _ => deks.push(StoredDek {
                    version: u32_col(r, "version")?,
                    kek_version: u32_col(r, "kek_version")?,
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
        let mut tx = self.write(scope).await?;
        require_live(&mut tx, scope).await?;
        insert_dek(&mut tx, scope, d).await?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn replace_kek(
        &self,
        scope: &TenantScope,
        kek: &StoredKek,
        rewrapped: &[StoredDek],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        require_live(&mut tx, scope).await?;
        insert_kek(&mut tx, scope, kek).await?;
        for d in rewrapped {
            let done = sqlx::query(
                "UPDATE data_keys SET kek_version = $1, wrapped = $2 WHERE tenant_id = $3 AND version = $4",
            )
            .bind(i64::from(d.kek_version))
            .bind(&d.wrapped)
            .bind(tid(scope))
            .bind(i64::from(d.version))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict {
                    what: "data key set changed during KEK rotation; retry",
                });
            }
        }
        // Every data key must now be wrapped by the new KEK, or the old KEK cannot go.
        let stale: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM data_keys WHERE tenant_id = $1 AND kek_version <> $2",
        )
        .bind(tid(scope))
        .bind(i64::from(kek.version))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if stale != 0 {
            return Err(StoreError::Conflict {
                what: "data key set changed during KEK rotation; retry",
            });
        }
        sqlx::query("DELETE FROM tenant_keks WHERE tenant_id = $1 AND version <> $2")
            .bind(tid(scope))
            .bind(i64::from(kek.version))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn reserve_seals(
        &self,
        scope: &TenantScope,
        version: u32,
        n: u64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write(scope).await?;
        let total: Option<i64> = sqlx::query_scalar(
            "UPDATE data_keys SET seals_reserved = seals_reserved + $1 WHERE tenant_id = $2 AND version = $3 RETURNING seals_reserved",
        )
        .bind(int(n)?)
        .bind(tid(scope))
        .bind(i64::from(version))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
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
        let mut tx = self.write(scope).await?;
        for sql in [
            "DELETE FROM data_keys WHERE tenant_id = $1",
            "DELETE FROM tenant_keks WHERE tenant_id = $1",
        ] {
            sqlx::query(sql)
                .bind(tid(scope))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("UPDATE tenant_homes SET keys_destroyed_at = COALESCE(keys_destroyed_at, $1) WHERE tenant_id = $2")
            .bind(to_micros(audit.at))
            .bind(tid(scope))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::erase_all_subjects(&mut tx, scope, audit.at).await?;
        super::audit::append(&mut tx, scope, audit).await?;
        // Unlike SQLite's secure_delete and log truncation, the deleted rows' bytes
        // stay in dead tuples until (auto)vacuum reclaims them, and in the write-ahead
        // log until it is recycled (docs/postgres.md).
        tx.commit().await.map_err(db)
    }
}
