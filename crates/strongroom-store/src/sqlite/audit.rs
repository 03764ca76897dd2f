//! SQL for the audit trail. Appends run inside the caller's write transaction, so a
//! regulated write and its entry commit together or not at all. There is no statement
//! here (or anywhere) that updates or deletes an entry, and the schema's triggers refuse
//! both.

use sqlx::{Row, Sqlite, Transaction};
use strongroom_core::access::TenantScope;
use strongroom_core::audit::merkle::leaf_hash;
use strongroom_core::store::{AuditEvent, StoreError, StoredEntry};

use super::Db;
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

fn tid(scope: &TenantScope) -> String {
    scope.tenant().as_uuid().to_string()
}

/// Appends `event` to the tenant's log inside `tx`: next sequence number, time never
/// earlier than the previous entry's. Returns the entry's sequence number.
pub(super) async fn append(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &TenantScope,
    event: &AuditEvent,
) -> Result<u64, StoreError> {
    event
        .entry
        .validate()
        .map_err(|e| StoreError::Backend(format!("audit entry refused: {e}")))?;
    let last = sqlx::query(
        "SELECT seq, time_us FROM audit_entries WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(tid(scope))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    let (seq, floor) = match last {
        Some(r) => {
            let seq: i64 = r.try_get("seq").map_err(db)?;
            let seq = u64::try_from(seq)
                .map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?
                + 1;
            (seq, Some(from_micros(r.try_get("time_us").map_err(db)?)?))
        }
        None => (0, None),
    };
    // Microsecond precision is what is stored; compare at that precision.
    let now = from_micros(to_micros(event.at))?;
    let time = floor.map_or(now, |f| f.max(now));
    let entry = event.entry.clone().at(scope.tenant(), seq, time);
    let bytes = entry.canonical();
    sqlx::query("INSERT INTO audit_entries (tenant_id, seq, time_us, action, actor, target, entry, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(i64::try_from(seq).map_err(|_| StoreError::Backend("audit log full".into()))?)
        .bind(to_micros(time))
        .bind(entry.action)
        .bind(format!("{}:{}", entry.actor.kind, entry.actor.id.as_deref().unwrap_or("")))
        .bind(format!("{}:{}", entry.target.kind, entry.target.id))
        .bind(&bytes)
        .bind(leaf_hash(&bytes).to_vec())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(seq)
}

/// Entries `from..` of the tenant's log, at most `limit`, in order.
pub(super) async fn entries(
    region: &Db,
    scope: &TenantScope,
    from: u64,
    limit: u32,
) -> Result<Vec<StoredEntry>, StoreError> {
    let from = i64::try_from(from).map_err(|_| StoreError::Backend("seq out of range".into()))?;
    sqlx::query("SELECT seq, entry, leaf_hash FROM audit_entries WHERE tenant_id = ? AND seq >= ? ORDER BY seq LIMIT ?")
        .bind(tid(scope))
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(region.read())
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            let seq: i64 = r.try_get("seq").map_err(db)?;
            let hash: Vec<u8> = r.try_get("leaf_hash").map_err(db)?;
            Ok(StoredEntry {
                seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
                entry: r.try_get("entry").map_err(db)?,
                leaf_hash: hash.try_into().map_err(|_| StoreError::Corrupt("leaf hash length".into()))?,
            })
        })
        .collect()
}
