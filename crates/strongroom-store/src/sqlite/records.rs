//! The records port on SQLite. Every statement binds `tenant_id` from the caller's
//! scope. Revisions, signatures, events and type versions are only inserted; the one
//! statement that updates a version row carries `state <> 'approved'` (and the schema's
//! trigger refuses it anyway), so no path in this file can change an approved version.

use async_trait::async_trait;
use strongroom_core::access::{TenantScope, WritableScope};
use strongroom_core::audit::merkle::Hash;
use strongroom_core::store::{
    AuditEvent, Page, RecordChange, RecordFilter, RecordStore, StoreError, StoredRecord,
    StoredRecordEvent, StoredRecordType, StoredRevision, StoredSignature, StoredVersion,
    VersionUpdate,
};

use super::keys::require_live;
use super::{
    Builder, Connection, SqliteRow, SqliteStore, dynamic, int, query, query_scalar, tid, u32_col,
    u64_col,
};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

fn hash_col(r: &SqliteRow, col: &str) -> Result<Hash, StoreError> {
    let v: Vec<u8> = r.try_get(col).map_err(db)?;
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("{col} is not 32 bytes")))
}

fn type_from_row(r: &SqliteRow) -> Result<StoredRecordType, StoreError> {
    Ok(StoredRecordType {
        name: r.try_get("name").map_err(db)?,
        version: u64_col(r, "version")?,
        definition: r.try_get("definition").map_err(db)?,
        created_by: r.try_get("created_by").map_err(db)?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
    })
}

const RECORD_COLUMNS: &str =
    "id, type_name, current_version, status, seq, created_by, created_at, updated_at";

fn record_from_row(r: &SqliteRow) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        id: r.try_get("id").map_err(db)?,
        type_name: r.try_get("type_name").map_err(db)?,
        current_version: u64_col(r, "current_version")?,
        status: r.try_get("status").map_err(db)?,
        seq: u64_col(r, "seq")?,
        created_by: r.try_get("created_by").map_err(db)?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
        updated_at: from_micros(r.try_get("updated_at").map_err(db)?)?,
    })
}

fn version_from_row(r: &SqliteRow) -> Result<StoredVersion, StoreError> {
    let approved: Option<i64> = r.try_get("approved_at").map_err(db)?;
    Ok(StoredVersion {
        version: u64_col(r, "version")?,
        type_version: u64_col(r, "type_version")?,
        state: r.try_get("state").map_err(db)?,
        revision: u64_col(r, "revision")?,
        content_hash: hash_col(r, "content_hash")?,
        created_by: r.try_get("created_by").map_err(db)?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
        approved_at: approved.map(from_micros).transpose()?,
    })
}

fn revision_from_row(r: &SqliteRow) -> Result<StoredRevision, StoreError> {
    Ok(StoredRevision {
        version: u64_col(r, "version")?,
        revision: u64_col(r, "revision")?,
        dek_version: u32_col(r, "dek_version")?,
        sealed: r.try_get("sealed").map_err(db)?,
        attachments: r.try_get("attachments").map_err(db)?,
        content_hash: hash_col(r, "content_hash")?,
        saved_by: r.try_get("saved_by").map_err(db)?,
        saved_at: from_micros(r.try_get("saved_at").map_err(db)?)?,
    })
}

fn signature_from_row(r: &SqliteRow) -> Result<StoredSignature, StoreError> {
    Ok(StoredSignature {
        id: r.try_get("id").map_err(db)?,
        record_id: r.try_get("record_id").map_err(db)?,
        version: u64_col(r, "version")?,
        signer_id: r.try_get("signer_id").map_err(db)?,
        printed_name: r.try_get("printed_name").map_err(db)?,
        meaning: r.try_get("meaning").map_err(db)?,
        comment: r.try_get("comment").map_err(db)?,
        signed_at: from_micros(r.try_get("signed_at").map_err(db)?)?,
        content_hash: hash_col(r, "content_hash")?,
        session_id: r.try_get("session_id").map_err(db)?,
        reauth: r.try_get("reauth").map_err(db)?,
        signature_hash: hash_col(r, "signature_hash")?,
        audit_seq: u64_col(r, "audit_seq")?,
    })
}

fn insert_version(
    tx: &Connection,
    scope: &TenantScope,
    record: &str,
    v: &StoredVersion,
) -> Result<(), StoreError> {
    query("INSERT INTO record_versions (tenant_id, record_id, version, type_version, state, revision, content_hash, created_by, created_at, approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(record)
        .bind(int(v.version)?)
        .bind(int(v.type_version)?)
        .bind(&v.state)
        .bind(int(v.revision)?)
        .bind(v.content_hash.as_slice())
        .bind(&v.created_by)
        .bind(to_micros(v.created_at))
        .bind(v.approved_at.map(to_micros))
        .execute(tx)
        .map_err(|e| map(e, "record version"))?;
    Ok(())
}

fn insert_revision(
    tx: &Connection,
    scope: &TenantScope,
    record: &str,
    r: &StoredRevision,
) -> Result<(), StoreError> {
    query("INSERT INTO record_revisions (tenant_id, record_id, version, revision, dek_version, sealed, attachments, content_hash, saved_by, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(record)
        .bind(int(r.version)?)
        .bind(int(r.revision)?)
        .bind(i64::from(r.dek_version))
        .bind(&r.sealed)
        .bind(&r.attachments)
        .bind(r.content_hash.as_slice())
        .bind(&r.saved_by)
        .bind(to_micros(r.saved_at))
        .execute(tx)
        .map_err(|e| map(e, "record revision"))?;
    Ok(())
}

/// Sets the record's blind-index tokens: one statement to drop the old ones (none for
/// a record created in this transaction) and one per thousand new ones.
fn replace_index(
    tx: &Connection,
    scope: &TenantScope,
    record: &str,
    tokens: &[(String, Hash)],
    fresh: bool,
) -> Result<(), StoreError> {
    if !fresh {
        query("DELETE FROM record_index WHERE tenant_id = ? AND record_id = ?")
            .bind(tid(scope))
            .bind(record)
            .execute(tx)
            .map_err(db)?;
    }
    // One cached statement run per token: on the writer thread that costs a
    // microsecond or two each, and a multi-row statement of varying length would fill
    // the prepared-statement cache with one entry per token count.
    let tenant = tid(scope);
    for (field, token) in tokens {
        query("INSERT OR IGNORE INTO record_index (tenant_id, record_id, field, token) VALUES (?, ?, ?, ?)")
            .bind(&tenant)
            .bind(record)
            .bind(field)
            .bind(token.as_slice())
            .execute(tx)
            .map_err(db)?;
    }
    Ok(())
}

/// The one statement that changes a version row: never an approved one (the
/// statement excludes it; the schema's trigger would refuse it anyway).
fn update_version(
    tx: &Connection,
    scope: &TenantScope,
    record: &str,
    u: &VersionUpdate,
) -> Result<(), StoreError> {
    let n = query("UPDATE record_versions SET state = ?, revision = ?, content_hash = ?, approved_at = ? WHERE tenant_id = ? AND record_id = ? AND version = ? AND state <> 'approved'")
        .bind(&u.state)
        .bind(int(u.revision)?)
        .bind(u.content_hash.as_slice())
        .bind(u.approved_at.map(to_micros))
        .bind(tid(scope))
        .bind(record)
        .bind(int(u.version)?)
        .execute(tx)
        .map_err(db)?
        .rows_affected();
    if n != 1 {
        return Err(StoreError::backend(
            "refusing to change an approved (or missing) record version",
        ));
    }
    Ok(())
}

fn insert_signature(
    tx: &Connection,
    scope: &TenantScope,
    record: &str,
    s: &StoredSignature,
    audit_seq: u64,
) -> Result<(), StoreError> {
    query("INSERT INTO signatures (tenant_id, id, record_id, version, signer_id, printed_name, meaning, comment, signed_at, content_hash, session_id, reauth, signature_hash, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(&s.id)
        .bind(record)
        .bind(int(s.version)?)
        .bind(&s.signer_id)
        .bind(&s.printed_name)
        .bind(&s.meaning)
        .bind(&s.comment)
        .bind(to_micros(s.signed_at))
        .bind(s.content_hash.as_slice())
        .bind(&s.session_id)
        .bind(&s.reauth)
        .bind(s.signature_hash.as_slice())
        .bind(int(audit_seq)?)
        .execute(tx)
        .map_err(|e| map(e, "signature id"))?;
    Ok(())
}

fn insert_event(
    tx: &Connection,
    scope: &TenantScope,
    record: &str,
    e: &StoredRecordEvent,
    audit_seq: u64,
) -> Result<(), StoreError> {
    query("INSERT INTO record_events (tenant_id, record_id, seq, version, action, actor, reason, at, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(record)
        .bind(int(e.seq)?)
        .bind(int(e.version)?)
        .bind(&e.action)
        .bind(&e.actor)
        .bind(&e.reason)
        .bind(to_micros(e.at))
        .bind(int(audit_seq)?)
        .execute(tx)
        .map_err(db)?;
    Ok(())
}

/// The SQL of a filtered page of records.
fn list_query(tenant: String, f: &RecordFilter, page: &Page<String>) -> Builder {
    // Only constant SQL is pushed; every value is bound. With a blind-index filter,
    // the first one drives the query: its primary key (tenant, field, token,
    // record) yields exactly the matching records, already in id order, instead of
    // a scan of every record of the type checked one by one (CROSS JOIN keeps
    // SQLite from reordering the loop).
    let mut index = f.index.iter();
    // The column the page is ordered and continued by (the same value either way).
    let order = if f.index.is_empty() {
        "r.id"
    } else {
        "i.record_id"
    };
    let mut q = match index.next() {
        Some((field, token)) => {
            let mut q = Builder::new(format!(
                "SELECT {RECORD_COLUMNS} FROM record_index i CROSS JOIN records r ON r.tenant_id = i.tenant_id AND r.id = i.record_id WHERE i.tenant_id = "
            ));
            q.push_bind(tenant.clone())
                .push(" AND i.field = ")
                .push_bind(field.clone())
                .push(" AND i.token = ")
                .push_bind(token.to_vec());
            q
        }
        None => {
            let mut q = Builder::new(format!(
                "SELECT {RECORD_COLUMNS} FROM records r WHERE r.tenant_id = "
            ));
            q.push_bind(tenant.clone());
            q
        }
    };
    if let Some(after) = &page.after {
        q.push(format!(" AND {order} > ")).push_bind(after.clone());
    }
    if let Some(t) = &f.type_name {
        q.push(" AND type_name = ").push_bind(t.clone());
    }
    if let Some(s) = &f.status {
        q.push(" AND status = ").push_bind(s.clone());
    }
    if let Some(c) = &f.created_by {
        q.push(" AND created_by = ").push_bind(c.clone());
    }
    for (col, op, t) in [
        ("created_at", ">=", f.created_from),
        ("created_at", "<", f.created_to),
        ("updated_at", ">=", f.updated_from),
        ("updated_at", "<", f.updated_to),
    ] {
        if let Some(t) = t {
            q.push(format!(" AND {col} {op} ")).push_bind(to_micros(t));
        }
    }
    for (field, token) in index {
        q.push(" AND EXISTS (SELECT 1 FROM record_index x WHERE x.tenant_id = r.tenant_id AND x.record_id = r.id AND x.field = ")
                .push_bind(field.clone())
                .push(" AND x.token = ")
                .push_bind(token.to_vec())
                .push(")");
    }
    q.push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(i64::from(page.limit));
    q
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn insert_record_type(
        &self,
        scope: &WritableScope,
        t: &StoredRecordType,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, t, audit) = (scope.clone(), t.clone(), audit.clone());
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                query("INSERT INTO record_types (tenant_id, name, version, definition, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(&t.name)
                    .bind(int(t.version)?)
                    .bind(&t.definition)
                    .bind(&t.created_by)
                    .bind(to_micros(t.created_at))
                    .execute(tx)
                    .map_err(|e| map(e, "record type version"))?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn record_type(
        &self,
        scope: &TenantScope,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<StoredRecordType>, StoreError> {
        let region = self.region(scope)?;
        let q = match version {
            Some(v) => query("SELECT name, version, definition, created_by, created_at FROM record_types WHERE tenant_id = ? AND name = ? AND version = ?")
                .bind(tid(scope))
                .bind(name)
                .bind(int(v)?),
            None => query("SELECT name, version, definition, created_by, created_at FROM record_types WHERE tenant_id = ? AND name = ? ORDER BY version DESC LIMIT 1")
                .bind(tid(scope))
                .bind(name),
        };
        q.fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(type_from_row)
            .transpose()
    }

    async fn record_types(&self, scope: &TenantScope) -> Result<Vec<StoredRecordType>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT name, version, definition, created_by, created_at FROM record_types t WHERE tenant_id = ?1 AND version = (SELECT MAX(version) FROM record_types u WHERE u.tenant_id = ?1 AND u.name = t.name) ORDER BY name LIMIT 1000")
            .bind(tid(scope))
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(type_from_row)
            .collect()
    }

    async fn create_record(
        &self,
        scope: &WritableScope,
        r: &StoredRecord,
        version: &StoredVersion,
        revision: &StoredRevision,
        index: &[(String, Hash)],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, r, version, revision, index, audit) = (
            scope.clone(),
            r.clone(),
            version.clone(),
            revision.clone(),
            index.to_vec(),
            audit.clone(),
        );
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                query("INSERT INTO records (tenant_id, id, type_name, current_version, status, seq, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(&r.id)
                    .bind(&r.type_name)
                    .bind(int(r.current_version)?)
                    .bind(&r.status)
                    .bind(int(r.seq)?)
                    .bind(&r.created_by)
                    .bind(to_micros(r.created_at))
                    .bind(to_micros(r.updated_at))
                    .execute(tx)
                    .map_err(|e| map(e, "record id"))?;
                insert_version(tx, &scope, &r.id, &version)?;
                insert_revision(tx, &scope, &r.id, &revision)?;
                replace_index(tx, &scope, &r.id, &index, true)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn record(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let region = self.region(scope)?;
        // Only our own constant column list is formatted in; values are bound.
        dynamic(format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE tenant_id = ? AND id = ?"
        ))
        .bind(tid(scope))
        .bind(id)
        .fetch_optional(region.read()?)
        .map_err(db)?
        .as_ref()
        .map(record_from_row)
        .transpose()
    }

    async fn records(
        &self,
        scope: &TenantScope,
        f: &RecordFilter,
        page: &Page<String>,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let region = self.region(scope)?;
        list_query(tid(scope), f, page)
            .build()
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(record_from_row)
            .collect()
    }

    async fn record_versions(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT version, type_version, state, revision, content_hash, created_by, created_at, approved_at FROM record_versions WHERE tenant_id = ? AND record_id = ? ORDER BY version")
            .bind(tid(scope))
            .bind(id)
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(version_from_row)
            .collect()
    }

    async fn record_revisions(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredRevision>, StoreError> {
        let region = self.region(scope)?;
        // `X''` in place of the ciphertext: the row shape without reading it.
        query("SELECT version, revision, dek_version, X'' AS sealed, attachments, content_hash, saved_by, saved_at FROM record_revisions WHERE tenant_id = ? AND record_id = ? ORDER BY version, revision")
            .bind(tid(scope))
            .bind(id)
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(revision_from_row)
            .collect()
    }

    async fn record_revision(
        &self,
        scope: &TenantScope,
        id: &str,
        version: u64,
        revision: u64,
    ) -> Result<Option<StoredRevision>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT version, revision, dek_version, sealed, attachments, content_hash, saved_by, saved_at FROM record_revisions WHERE tenant_id = ? AND record_id = ? AND version = ? AND revision = ?")
            .bind(tid(scope))
            .bind(id)
            .bind(int(version)?)
            .bind(int(revision)?)
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(revision_from_row)
            .transpose()
    }

    async fn latest_record_revision(
        &self,
        scope: &TenantScope,
        id: &str,
        version: u64,
    ) -> Result<Option<StoredRevision>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT version, revision, dek_version, sealed, attachments, content_hash, saved_by, saved_at FROM record_revisions WHERE tenant_id = ? AND record_id = ? AND version = ? ORDER BY revision DESC LIMIT 1")
            .bind(tid(scope))
            .bind(id)
            .bind(int(version)?)
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(revision_from_row)
            .transpose()
    }

    async fn record_editors(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let region = self.region(scope)?;
        let conn = region.read()?;
        let mut editors: Vec<String> = query_scalar(
            "SELECT DISTINCT saved_by FROM record_revisions WHERE tenant_id = ? AND record_id = ?",
        )
        .bind(tid(scope))
        .bind(id)
        .fetch_all(&conn)
        .map_err(db)?;
        let starters: Vec<String> = query_scalar(
            "SELECT DISTINCT created_by FROM record_versions WHERE tenant_id = ? AND record_id = ?",
        )
        .bind(tid(scope))
        .bind(id)
        .fetch_all(&conn)
        .map_err(db)?;
        editors.extend(starters);
        Ok(editors)
    }

    async fn record_signatures(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredSignature>, StoreError> {
        let region = self.region(scope)?;
        query("SELECT id, record_id, version, signer_id, printed_name, meaning, comment, signed_at, content_hash, session_id, reauth, signature_hash, audit_seq FROM signatures WHERE tenant_id = ? AND record_id = ? ORDER BY version, audit_seq")
            .bind(tid(scope))
            .bind(id)
            .fetch_all(region.read()?)
            .map_err(db)?
            .iter()
            .map(signature_from_row)
            .collect()
    }

    async fn record_events(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredRecordEvent>, StoreError> {
        let region = self.region(scope)?;
        let rows = query("SELECT seq, version, action, actor, reason, at, audit_seq FROM record_events WHERE tenant_id = ? AND record_id = ? ORDER BY seq")
            .bind(tid(scope))
            .bind(id)
            .fetch_all(region.read()?)
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(StoredRecordEvent {
                    seq: u64_col(r, "seq")?,
                    version: u64_col(r, "version")?,
                    action: r.try_get("action").map_err(db)?,
                    actor: r.try_get("actor").map_err(db)?,
                    reason: r.try_get("reason").map_err(db)?,
                    at: from_micros(r.try_get("at").map_err(db)?)?,
                    audit_seq: u64_col(r, "audit_seq")?,
                })
            })
            .collect()
    }

    async fn session_has_signed(
        &self,
        scope: &TenantScope,
        session: &str,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let found: Option<i64> =
            query_scalar("SELECT 1 FROM signatures WHERE tenant_id = ? AND session_id = ? LIMIT 1")
                .bind(tid(scope))
                .bind(session)
                .fetch_optional(region.read()?)
                .map_err(db)?;
        Ok(found.is_some())
    }

    async fn change_record(
        &self,
        scope: &WritableScope,
        c: &RecordChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, c, audit) = (scope.clone(), c.clone(), audit.to_vec());
        region
            .write(move |tx| {
                require_live(tx, &scope)?;
                // The compare-and-swap on the change counter: a stale writer changes nothing.
                let moved = query("UPDATE records SET seq = seq + 1, status = ?, current_version = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND seq = ? AND status <> 'retired'")
                    .bind(&c.status)
                    .bind(int(c.current_version)?)
                    .bind(to_micros(c.at))
                    .bind(tid(&scope))
                    .bind(&c.record)
                    .bind(int(c.expected_seq)?)
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                if moved != 1 {
                    // Nothing was written before this point (`require_live` only reads
                    // and the update matched no row), so keeping the savepoint keeps
                    // nothing: "false, nothing written", as the port promises.
                    return Ok(false);
                }
                // From here on every refusal is an `Err`, which rolls back the
                // counter's move and everything after it.
                let mut seqs = Vec::with_capacity(audit.len());
                for event in &audit {
                    seqs.push(super::audit::append(tx, &scope, event)?);
                }
                if let Some(v) = &c.new_version {
                    insert_version(tx, &scope, &c.record, v)?;
                }
                if let Some(u) = &c.version_update {
                    update_version(tx, &scope, &c.record, u)?;
                }
                if let Some(r) = &c.revision {
                    insert_revision(tx, &scope, &c.record, r)?;
                }
                if let Some(s) = &c.signature {
                    let audit_seq = *seqs
                        .first()
                        .ok_or_else(|| StoreError::backend("a signature needs its audit entry"))?;
                    insert_signature(tx, &scope, &c.record, s, audit_seq)?;
                }
                if let Some(e) = &c.event {
                    let audit_seq = *seqs
                        .last()
                        .ok_or_else(|| StoreError::backend("a record event needs its audit entry"))?;
                    insert_event(tx, &scope, &c.record, e, audit_seq)?;
                }
                if let Some(index) = &c.index {
                    replace_index(tx, &scope, &c.record, index, false)?;
                }
                Ok(true)
            })
            .await
    }
}
