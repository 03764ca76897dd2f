//! SQL for the audit trail. Appends run inside the caller's write transaction, so a
//! regulated write and its entry commit together or not at all. There is no statement
//! here (or anywhere) that updates or deletes an entry, and the schema's triggers refuse
//! both.

use async_trait::async_trait;
use strongroom_core::access::{TenantScope, WritableScope};
use strongroom_core::audit::merkle::{Hash, leaf_hash};
use strongroom_core::store::{
    AuditEvent, AuditFilter, AuditLogState, AuditStore, PendingWork, StoreError, StoredEntry,
    StoredSubjectKey, StoredTile,
};
use time::OffsetDateTime;

use super::{Connection, SqliteRow, SqliteStore, dynamic, int, query, query_scalar, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

/// Appends `event` to the tenant's log inside `tx`: next sequence number, time never
/// earlier than the previous entry's. Returns the entry's sequence number.
pub(super) fn append(
    tx: &Connection,
    scope: &TenantScope,
    event: &AuditEvent,
) -> Result<u64, StoreError> {
    event.entry.validate().map_err(|e| StoreError::Backend {
        context: "audit entry refused".into(),
        source: Some(Box::new(e)),
    })?;
    let last = query(
        "SELECT seq, time_us FROM audit_entries WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(tid(scope))
    .fetch_optional(tx)
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
    query("INSERT INTO audit_entries (tenant_id, seq, time_us, action, actor, target, entry, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(i64::try_from(seq).map_err(|_| StoreError::backend("audit log full"))?)
        .bind(to_micros(time))
        .bind(entry.action)
        .bind(format!("{}:{}", entry.actor.kind, entry.actor.id.as_deref().unwrap_or("")))
        .bind(format!("{}:{}", entry.target.kind, entry.target.id))
        .bind(&bytes)
        .bind(leaf_hash(&bytes).as_slice())
        .execute(tx)
        .map_err(db)?;
    // The platform's own trail (control database) is integrated every round anyway.
    if !scope.region().is_platform() {
        super::directory::mark_pending(tx, scope, PendingWork::Audit, seq + 1)?;
    }
    Ok(seq)
}

/// Appends `event` only if the change it records happened (`changed`), and returns
/// `changed`: a guarded update that matched no row wrote nothing, so returning
/// `Ok(false)` from the write keeps nothing and there is nothing to audit.
pub(super) fn append_if(
    tx: &Connection,
    changed: bool,
    scope: &TenantScope,
    event: &AuditEvent,
) -> Result<bool, StoreError> {
    if changed {
        append(tx, scope, event)?;
    }
    Ok(changed)
}

fn entry_from_row(r: &SqliteRow) -> Result<StoredEntry, StoreError> {
    let seq: i64 = r.try_get("seq").map_err(db)?;
    let hash: Vec<u8> = r.try_get("leaf_hash").map_err(db)?;
    Ok(StoredEntry {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
        entry: r.try_get("entry").map_err(db)?,
        leaf_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("leaf hash length".into()))?,
    })
}

fn subject_from_row(r: &SqliteRow) -> Result<StoredSubjectKey, StoreError> {
    Ok(StoredSubjectKey {
        key_id: r.try_get("key_id").map_err(db)?,
        wrapped: r.try_get("wrapped_key").map_err(db)?,
    })
}

/// Erases every subject key of the tenant, inside a shredding transaction.
pub(super) fn erase_all_subjects(
    tx: &Connection,
    scope: &TenantScope,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    query("UPDATE audit_subjects SET wrapped_key = NULL, erased_us = ? WHERE tenant_id = ? AND wrapped_key IS NOT NULL")
        .bind(to_micros(at))
        .bind(tid(scope))
        .execute(tx)
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_entries(
        &self,
        scope: &TenantScope,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let region = self.region(scope)?;
        let from = i64::try_from(from).map_err(|_| StoreError::backend("seq out of range"))?;
        query("SELECT seq, entry, leaf_hash FROM audit_entries WHERE tenant_id = ? AND seq >= ? ORDER BY seq LIMIT ?")
            .bind(tid(scope))
            .bind(from)
            .bind(i64::from(limit))
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(entry_from_row)
            .collect()
    }

    async fn audit_log(&self, scope: &TenantScope) -> Result<Option<AuditLogState>, StoreError> {
        let region = self.region(scope)?;
        let row = query("SELECT key_name, public_key, wrapped_seed, size, checkpoint FROM audit_logs WHERE tenant_id = ?")
            .bind(tid(scope))
            .fetch_optional(region.read()?)
            .map_err(db)?;
        let Some(r) = row else { return Ok(None) };
        let size: i64 = r.try_get("size").map_err(db)?;
        Ok(Some(AuditLogState {
            key_name: r.try_get("key_name").map_err(db)?,
            public_key: r.try_get("public_key").map_err(db)?,
            wrapped_seed: r.try_get("wrapped_seed").map_err(db)?,
            size: u64::try_from(size)
                .map_err(|_| StoreError::Corrupt(format!("audit size {size}")))?,
            checkpoint: r.try_get("checkpoint").map_err(db)?,
        }))
    }

    async fn init_audit_log(
        &self,
        scope: &TenantScope,
        s: &AuditLogState,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (tenant, s) = (tid(scope), s.clone());
        region
            .write(move |tx| {
                query("INSERT INTO audit_logs (tenant_id, key_name, public_key, wrapped_seed, size, checkpoint) VALUES (?, ?, ?, ?, 0, NULL) ON CONFLICT DO NOTHING")
                    .bind(&tenant)
                    .bind(&s.key_name)
                    .bind(&s.public_key)
                    .bind(&s.wrapped_seed)
                    .execute(tx)
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn audit_tiles(
        &self,
        scope: &TenantScope,
        wanted: &[(u8, u64)],
    ) -> Result<Vec<StoredTile>, StoreError> {
        let region = self.region(scope)?;
        let mut out = Vec::with_capacity(wanted.len());
        let conn = region.read()?;
        for &(level, idx) in wanted {
            let row: Option<Vec<u8>> = query_scalar(
                "SELECT hashes FROM audit_tiles WHERE tenant_id = ? AND level = ? AND idx = ?",
            )
            .bind(tid(scope))
            .bind(i64::from(level))
            .bind(int(idx)?)
            .fetch_optional(&conn)
            .map_err(db)?;
            if let Some(bytes) = row {
                let hashes = bytes
                    .chunks_exact(32)
                    .map(|c| Hash::try_from(c).map_err(|_| StoreError::Corrupt("tile".into())))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push((level, idx, hashes));
            }
        }
        Ok(out)
    }

    async fn integrate_audit(
        &self,
        scope: &TenantScope,
        from: u64,
        to: u64,
        tiles: &[StoredTile],
        checkpoint: &str,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (tenant, to, from) = (tid(scope), int(to)?, int(from)?);
        let (tiles, checkpoint) = (tiles.to_vec(), checkpoint.to_owned());
        region
            .write(move |tx| {
                let moved = query(
                    "UPDATE audit_logs SET size = ?, checkpoint = ? WHERE tenant_id = ? AND size = ?",
                )
                .bind(to)
                .bind(&checkpoint)
                .bind(&tenant)
                .bind(from)
                .execute(tx)
                .map_err(db)?;
                // Another integrator moved the log first: nothing was written.
                if moved.rows_affected() != 1 {
                    return Ok(false);
                }
                for (level, idx, hashes) in &tiles {
                    query("INSERT INTO audit_tiles (tenant_id, level, idx, hashes) VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, level, idx) DO UPDATE SET hashes = excluded.hashes")
                        .bind(&tenant)
                        .bind(i64::from(*level))
                        .bind(int(*idx)?)
                        .bind(hashes.concat())
                        .execute(tx)
                        .map_err(db)?;
                }
                Ok(true)
            })
            .await
    }

    async fn audit_len(&self, scope: &TenantScope) -> Result<u64, StoreError> {
        let region = self.region(scope)?;
        let n: Option<i64> =
            query_scalar("SELECT MAX(seq) + 1 FROM audit_entries WHERE tenant_id = ?")
                .bind(tid(scope))
                .fetch_one(region.read()?)
                .map_err(db)?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn append_audit(
        &self,
        scope: &TenantScope,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let region = self.region(scope)?;
        let (scope, event) = (scope.clone(), event.clone());
        region.write(move |tx| append(tx, &scope, &event)).await
    }

    async fn audit_query(
        &self,
        scope: &TenantScope,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let region = self.region(scope)?;
        let mut sql = String::from(
            "SELECT seq, entry, leaf_hash FROM audit_entries WHERE tenant_id = ? AND seq >= ?",
        );
        for (present, fragment) in [
            (filter.actor.is_some(), " AND actor = ?"),
            (filter.action.is_some(), " AND action = ?"),
            (filter.target.is_some(), " AND target = ?"),
            (filter.since.is_some(), " AND time_us >= ?"),
            (filter.until.is_some(), " AND time_us < ?"),
        ] {
            if present {
                sql.push_str(fragment);
            }
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let mut q = dynamic(sql).bind(tid(scope)).bind(int(from)?);
        for text in [&filter.actor, &filter.action, &filter.target]
            .into_iter()
            .flatten()
        {
            q = q.bind(text.clone());
        }
        for t in [filter.since, filter.until].into_iter().flatten() {
            q = q.bind(to_micros(t));
        }
        q.bind(i64::from(limit))
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(entry_from_row)
            .collect()
    }

    async fn audit_subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
    ) -> Result<Option<StoredSubjectKey>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT key_id, wrapped_key FROM audit_subjects WHERE tenant_id = ? AND subject = ? AND wrapped_key IS NOT NULL")
            .bind(tid(scope))
            .bind(subject)
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(subject_from_row)
            .transpose()
    }

    async fn audit_subject_key_by_id(
        &self,
        scope: &TenantScope,
        key_id: &str,
    ) -> Result<Option<StoredSubjectKey>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT key_id, wrapped_key FROM audit_subjects WHERE tenant_id = ? AND key_id = ?")
            .bind(tid(scope))
            .bind(key_id)
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(subject_from_row)
            .transpose()
    }

    async fn insert_audit_subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
        key: &StoredSubjectKey,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let Some(wrapped) = &key.wrapped else {
            return Err(StoreError::backend(
                "a new subject key must have key material",
            ));
        };
        let (tenant, key_id, subject, wrapped) = (
            tid(scope),
            key.key_id.clone(),
            subject.to_owned(),
            wrapped.clone(),
        );
        region
            .write(move |tx| {
                // The partial unique index allows one live key per subject: a concurrent
                // first use that lost the race inserts nothing.
                query("INSERT INTO audit_subjects (tenant_id, key_id, subject, wrapped_key, created_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
                    .bind(&tenant)
                    .bind(&key_id)
                    .bind(&subject)
                    .bind(&wrapped)
                    .bind(to_micros(at))
                    .execute(tx)
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn erase_audit_subject(
        &self,
        scope: &WritableScope,
        subject: &str,
        event: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let region = self.region(scope)?;
        let (scope, subject, event) =
            (TenantScope::clone(scope), subject.to_owned(), event.clone());
        let erased = region
            .write(move |tx| {
                let erased = query("UPDATE audit_subjects SET wrapped_key = NULL, erased_us = ? WHERE tenant_id = ? AND subject = ? AND wrapped_key IS NOT NULL")
                    .bind(to_micros(event.at))
                    .bind(tid(&scope))
                    .bind(&subject)
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                append(tx, &scope, &event)?;
                Ok(erased)
            })
            .await?;
        region.purge_log().await?;
        Ok(erased)
    }
}
