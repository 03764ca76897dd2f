//! SQL for tenant keys, sealed values and blob metadata in a region database. Every
//! statement binds `tenant_id` from a [`TenantScope`].

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use strongroom_core::access::TenantScope;
use strongroom_core::store::{
    AuditEvent, StoreError, StoredBlob, StoredDek, StoredKek, StoredSealed, TenantKeys,
};

use super::{Db, int, tid};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

fn u32_col(r: &SqliteRow, col: &str) -> Result<u32, StoreError> {
    let v: i64 = r.try_get(col).map_err(db)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} = {v}")))
}

fn u64_col(r: &SqliteRow, col: &str) -> Result<u64, StoreError> {
    let v: i64 = r.try_get(col).map_err(db)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} = {v}")))
}

pub(super) async fn insert_keks_and_deks(
    tx: &mut Transaction<'static, Sqlite>,
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

async fn insert_kek(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &TenantScope,
    k: &StoredKek,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO tenant_keks (tenant_id, version, provider, wrapped, created_at) VALUES (?, ?, ?, ?, ?)")
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

async fn insert_dek(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &TenantScope,
    d: &StoredDek,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO data_keys (tenant_id, version, kek_version, wrapped, created_at, seals_reserved) VALUES (?, ?, ?, ?, ?, ?)")
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

pub(super) async fn tenant_keys(
    region: &Db,
    scope: &TenantScope,
) -> Result<TenantKeys, StoreError> {
    // One read transaction: a concurrent KEK rotation is seen entirely or not at all.
    let mut tx = region.read().begin().await.map_err(db)?;
    let destroyed: Option<Option<i64>> =
        sqlx::query_scalar("SELECT keys_destroyed_at FROM tenant_homes WHERE tenant_id = ?")
            .bind(tid(scope))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    let keks = sqlx::query("SELECT version, provider, wrapped, created_at FROM tenant_keks WHERE tenant_id = ? ORDER BY version")
        .bind(tid(scope))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(StoredKek {
                version: u32_col(r, "version")?,
                provider: r.try_get("provider").map_err(db)?,
                wrapped: r.try_get("wrapped").map_err(db)?,
                created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let deks = sqlx::query("SELECT version, kek_version, wrapped, created_at, seals_reserved FROM data_keys WHERE tenant_id = ? ORDER BY version")
        .bind(tid(scope))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(StoredDek {
                version: u32_col(r, "version")?,
                kek_version: u32_col(r, "kek_version")?,
                wrapped: r.try_get("wrapped").map_err(db)?,
                created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
                seals_reserved: u64_col(r, "seals_reserved")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    tx.commit().await.map_err(db)?;
    Ok(TenantKeys {
        keks,
        deks,
        destroyed_at: destroyed.flatten().map(from_micros).transpose()?,
    })
}

pub(super) async fn add_data_key(
    region: &Db,
    scope: &TenantScope,
    d: &StoredDek,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    require_live(&mut tx, scope).await?;
    insert_dek(&mut tx, scope, d).await?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)
}

/// Fails when the tenant's keys were destroyed: nothing may be added after shredding.
async fn require_live(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &TenantScope,
) -> Result<(), StoreError> {
    let live: Option<i64> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tenant_homes WHERE tenant_id = ? AND keys_destroyed_at IS NULL",
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

pub(super) async fn replace_kek(
    region: &Db,
    scope: &TenantScope,
    kek: &StoredKek,
    rewrapped: &[StoredDek],
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    require_live(&mut tx, scope).await?;
    insert_kek(&mut tx, scope, kek).await?;
    for d in rewrapped {
        let done = sqlx::query(
            "UPDATE data_keys SET kek_version = ?, wrapped = ? WHERE tenant_id = ? AND version = ?",
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
        "SELECT COUNT(*) FROM data_keys WHERE tenant_id = ? AND kek_version <> ?",
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
    sqlx::query("DELETE FROM tenant_keks WHERE tenant_id = ? AND version <> ?")
        .bind(tid(scope))
        .bind(i64::from(kek.version))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)
}

pub(super) async fn reserve_seals(
    region: &Db,
    scope: &TenantScope,
    version: u32,
    n: u64,
) -> Result<u64, StoreError> {
    let mut tx = region.write().await?;
    let total: Option<i64> = sqlx::query_scalar(
        "UPDATE data_keys SET seals_reserved = seals_reserved + ? WHERE tenant_id = ? AND version = ? RETURNING seals_reserved",
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

pub(super) async fn destroy(
    region: &Db,
    scope: &TenantScope,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    for sql in [
        "DELETE FROM data_keys WHERE tenant_id = ?",
        "DELETE FROM tenant_keks WHERE tenant_id = ?",
    ] {
        sqlx::query(sql)
            .bind(tid(scope))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    sqlx::query("UPDATE tenant_homes SET keys_destroyed_at = COALESCE(keys_destroyed_at, ?) WHERE tenant_id = ?")
        .bind(to_micros(audit.at))
        .bind(tid(scope))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    super::audit::erase_all_subjects(&mut tx, scope, audit.at).await?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)?;
    region.purge_log().await
}

fn sealed_from_row(r: &SqliteRow) -> Result<StoredSealed, StoreError> {
    Ok(StoredSealed {
        id: r.try_get("id").map_err(db)?,
        version: u64_col(r, "version")?,
        dek_version: u32_col(r, "dek_version")?,
        sealed: r.try_get("sealed").map_err(db)?,
    })
}

pub(super) async fn put_sealed(
    region: &Db,
    scope: &TenantScope,
    kind: &str,
    v: &StoredSealed,
    expected: u64,
    audit: &AuditEvent,
) -> Result<bool, StoreError> {
    let mut tx = region.write().await?;
    require_live(&mut tx, scope).await?;
    let done = if expected == 0 {
        sqlx::query("INSERT INTO sealed_values (tenant_id, kind, id, version, dek_version, sealed) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(tid(scope))
            .bind(kind)
            .bind(&v.id)
            .bind(int(v.version)?)
            .bind(i64::from(v.dek_version))
            .bind(&v.sealed)
            .execute(&mut *tx)
            .await
    } else {
        sqlx::query("UPDATE sealed_values SET version = ?, dek_version = ?, sealed = ? WHERE tenant_id = ? AND kind = ? AND id = ? AND version = ?")
            .bind(int(v.version)?)
            .bind(i64::from(v.dek_version))
            .bind(&v.sealed)
            .bind(tid(scope))
            .bind(kind)
            .bind(&v.id)
            .bind(int(expected)?)
            .execute(&mut *tx)
            .await
    }
    .map_err(db)?;
    let written = done.rows_affected() == 1;
    if written {
        super::audit::append(&mut tx, scope, audit).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(written)
}

pub(super) async fn sealed(
    region: &Db,
    scope: &TenantScope,
    kind: &str,
    id: &str,
) -> Result<Option<StoredSealed>, StoreError> {
    sqlx::query("SELECT id, version, dek_version, sealed FROM sealed_values WHERE tenant_id = ? AND kind = ? AND id = ?")
        .bind(tid(scope))
        .bind(kind)
        .bind(id)
        .fetch_optional(region.read())
        .await
        .map_err(db)?
        .as_ref()
        .map(sealed_from_row)
        .transpose()
}

pub(super) async fn sealed_before(
    region: &Db,
    scope: &TenantScope,
    kind: &str,
    current: u32,
    limit: u32,
) -> Result<Vec<StoredSealed>, StoreError> {
    sqlx::query("SELECT id, version, dek_version, sealed FROM sealed_values WHERE tenant_id = ? AND kind = ? AND dek_version < ? ORDER BY id LIMIT ?")
        .bind(tid(scope))
        .bind(kind)
        .bind(i64::from(current))
        .bind(i64::from(limit))
        .fetch_all(region.read())
        .await
        .map_err(db)?
        .iter()
        .map(sealed_from_row)
        .collect()
}

pub(super) async fn reseal(
    region: &Db,
    scope: &TenantScope,
    kind: &str,
    old: &StoredSealed,
    new: &StoredSealed,
) -> Result<bool, StoreError> {
    let mut tx = region.write().await?;
    let done = sqlx::query("UPDATE sealed_values SET dek_version = ?, sealed = ? WHERE tenant_id = ? AND kind = ? AND id = ? AND version = ? AND dek_version = ?")
        .bind(i64::from(new.dek_version))
        .bind(&new.sealed)
        .bind(tid(scope))
        .bind(kind)
        .bind(&old.id)
        .bind(int(old.version)?)
        .bind(i64::from(old.dek_version))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(done.rows_affected() == 1)
}

fn blob_from_row(r: &SqliteRow) -> Result<StoredBlob, StoreError> {
    Ok(StoredBlob {
        id: r.try_get("id").map_err(db)?,
        dek_version: u32_col(r, "dek_version")?,
        size: u64_col(r, "size")?,
        file: r.try_get("file").map_err(db)?,
    })
}

pub(super) async fn insert_blob(
    region: &Db,
    scope: &TenantScope,
    b: &StoredBlob,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    require_live(&mut tx, scope).await?;
    sqlx::query(
        "INSERT INTO blobs (tenant_id, id, dek_version, size, file) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(tid(scope))
    .bind(&b.id)
    .bind(i64::from(b.dek_version))
    .bind(int(b.size)?)
    .bind(&b.file)
    .execute(&mut *tx)
    .await
    .map_err(|e| map(e, "blob id"))?;
    tx.commit().await.map_err(db)
}

pub(super) async fn blob(
    region: &Db,
    scope: &TenantScope,
    id: &str,
) -> Result<Option<StoredBlob>, StoreError> {
    sqlx::query("SELECT id, dek_version, size, file FROM blobs WHERE tenant_id = ? AND id = ?")
        .bind(tid(scope))
        .bind(id)
        .fetch_optional(region.read())
        .await
        .map_err(db)?
        .as_ref()
        .map(blob_from_row)
        .transpose()
}

pub(super) async fn blobs_before(
    region: &Db,
    scope: &TenantScope,
    current: u32,
    limit: u32,
) -> Result<Vec<StoredBlob>, StoreError> {
    sqlx::query("SELECT id, dek_version, size, file FROM blobs WHERE tenant_id = ? AND dek_version < ? ORDER BY id LIMIT ?")
        .bind(tid(scope))
        .bind(i64::from(current))
        .bind(i64::from(limit))
        .fetch_all(region.read())
        .await
        .map_err(db)?
        .iter()
        .map(blob_from_row)
        .collect()
}

pub(super) async fn reseal_blob(
    region: &Db,
    scope: &TenantScope,
    old: &StoredBlob,
    new: &StoredBlob,
) -> Result<bool, StoreError> {
    let mut tx = region.write().await?;
    let done = sqlx::query("UPDATE blobs SET dek_version = ?, file = ?, size = ? WHERE tenant_id = ? AND id = ? AND file = ? AND dek_version = ?")
        .bind(i64::from(new.dek_version))
        .bind(&new.file)
        .bind(int(new.size)?)
        .bind(tid(scope))
        .bind(&old.id)
        .bind(&old.file)
        .bind(i64::from(old.dek_version))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(done.rows_affected() == 1)
}
