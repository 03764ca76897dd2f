//! The support-access port on PostgreSQL: grants in a region database. Every statement
//! binds `tenant_id` from the scope; grants are never deleted, only revoked or marked
//! expired, each with its audit entry in the same transaction.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use strongroom_core::access::{Scoped, TenantScope, WritableScope};
use strongroom_core::identity::operator::OperatorId;
use strongroom_core::store::{AuditEvent, StoreError, SupportGrant, SupportScope, SupportStore};
use time::OffsetDateTime;

use super::directory::uuid;
use super::{PgStore, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

const COLUMNS: &str =
    "id, operator_id, scope, personal_data, reason, granted_by, created_at, expires_at, revoked_at";

fn grant_from_row(r: &PgRow) -> Result<SupportGrant, StoreError> {
    let scope: String = r.try_get("scope").map_err(db)?;
    let revoked: Option<i64> = r.try_get("revoked_at").map_err(db)?;
    Ok(SupportGrant {
        id: r.try_get("id").map_err(db)?,
        operator: OperatorId::from_uuid(uuid(&r.try_get::<String, _>("operator_id").map_err(db)?)?),
        scope: SupportScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("support scope {scope:?}")))?,
        personal_data: r.try_get::<i64, _>("personal_data").map_err(db)? == 1,
        reason: r.try_get("reason").map_err(db)?,
        granted_by: r.try_get("granted_by").map_err(db)?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
        expires_at: from_micros(r.try_get("expires_at").map_err(db)?)?,
        revoked_at: revoked.map(from_micros).transpose()?,
    })
}

#[async_trait]
impl SupportStore for PgStore {
    async fn insert_support_grant(
        &self,
        scope: &WritableScope,
        g: &SupportGrant,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        sqlx::query("INSERT INTO support_grants (tenant_id, id, operator_id, scope, personal_data, reason, granted_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(tid(scope))
            .bind(&g.id)
            .bind(g.operator.as_uuid().to_string())
            .bind(g.scope.as_str())
            .bind(i64::from(g.personal_data))
            .bind(&g.reason)
            .bind(&g.granted_by)
            .bind(to_micros(g.created_at))
            .bind(to_micros(g.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn support_grants(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<SupportGrant>, StoreError> {
        // `id COLLATE "C"`: ties broken in byte order, as SQLite's BINARY collation.
        let sql = format!(
            "SELECT {COLUMNS} FROM support_grants WHERE tenant_id = $1 ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $2"
        );
        let mut tx = self.read(scope).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tid(scope))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn live_support_grant(
        &self,
        scope: &dyn Scoped,
        operator: OperatorId,
        what: SupportScope,
        now: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM support_grants WHERE tenant_id = $1 AND operator_id = $2 AND scope = $3 AND revoked_at IS NULL AND expires_at > $4 ORDER BY expires_at DESC LIMIT 1"
        );
        let mut tx = self.read(scope).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tid(scope))
            .bind(operator.as_uuid().to_string())
            .bind(what.as_str())
            .bind(to_micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn revoke_support_grant(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        if id.contains('\0') {
            // PostgreSQL text cannot hold NUL, so no grant has this id (SQLite would
            // simply match nothing); asking would fail the statement instead.
            return Ok(false);
        }
        let mut tx = self.write(scope).await?;
        let done = sqlx::query("UPDATE support_grants SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL AND expires_at > $4")
            .bind(to_micros(audit.at))
            .bind(tid(scope))
            .bind(id)
            .bind(to_micros(audit.at))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if done == 0 {
            // Dropping `tx` rolls back (and releases the tenant's lock).
            return Ok(false);
        }
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn unrecorded_expiries(
        &self,
        scope: &TenantScope,
        now: OffsetDateTime,
    ) -> Result<Vec<SupportGrant>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM support_grants WHERE tenant_id = $1 AND revoked_at IS NULL AND expiry_recorded = 0 AND expires_at <= $2 LIMIT 100"
        );
        let mut tx = self.read(scope).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tid(scope))
            .bind(to_micros(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn record_expiry(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        let done = sqlx::query("UPDATE support_grants SET expiry_recorded = 1 WHERE tenant_id = $1 AND id = $2 AND expiry_recorded = 0")
            .bind(tid(scope))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if done == 1 {
            super::audit::append(&mut tx, scope, audit).await?;
        }
        tx.commit().await.map_err(db)
    }
}
