//! The support-access port on SQLite: grants in a region database. Every statement
//! binds `tenant_id` from the scope; grants are never deleted, only revoked or marked
//! expired, each with its audit entry in the same transaction.

use async_trait::async_trait;
use strongroom_core::access::{Scoped, TenantScope, WritableScope};
use strongroom_core::identity::operator::OperatorId;
use strongroom_core::store::{AuditEvent, StoreError, SupportGrant, SupportScope, SupportStore};
use time::OffsetDateTime;

use super::directory::uuid;
use super::{SqliteRow, SqliteStore, dynamic, query, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

const COLUMNS: &str =
    "id, operator_id, scope, personal_data, reason, granted_by, created_at, expires_at, revoked_at";

fn grant_from_row(r: &SqliteRow) -> Result<SupportGrant, StoreError> {
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
impl SupportStore for SqliteStore {
    async fn insert_support_grant(
        &self,
        scope: &WritableScope,
        g: &SupportGrant,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, g, audit) = (scope.clone(), g.clone(), audit.clone());
        region
            .write(move |tx| {
                query("INSERT INTO support_grants (tenant_id, id, operator_id, scope, personal_data, reason, granted_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(&g.id)
                    .bind(g.operator.as_uuid().to_string())
                    .bind(g.scope.as_str())
                    .bind(i64::from(g.personal_data))
                    .bind(&g.reason)
                    .bind(&g.granted_by)
                    .bind(to_micros(g.created_at))
                    .bind(to_micros(g.expires_at))
                    .execute(tx)
                    .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn support_grants(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<SupportGrant>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM support_grants WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?"
        );
        dynamic(sql)
            .bind(tid(scope))
            .bind(i64::from(limit))
            .fetch_all(self.region(scope)?.read()?)
            .map_err(db)?
            .iter()
            .map(grant_from_row)
            .collect()
    }

    async fn live_support_grant(
        &self,
        scope: &dyn Scoped,
        operator: OperatorId,
        what: SupportScope,
        now: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM support_grants WHERE tenant_id = ? AND operator_id = ? AND scope = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY expires_at DESC LIMIT 1"
        );
        dynamic(sql)
            .bind(tid(scope))
            .bind(operator.as_uuid().to_string())
            .bind(what.as_str())
            .bind(to_micros(now))
            .fetch_optional(self.region(scope)?.read()?)
            .map_err(db)?
            .as_ref()
            .map(grant_from_row)
            .transpose()
    }

    async fn revoke_support_grant(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, id, audit) = (scope.clone(), id.to_owned(), audit.clone());
        region
            .write(move |tx| {
                let done = query("UPDATE support_grants SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL AND expires_at > ?")
                    .bind(to_micros(audit.at))
                    .bind(tid(&scope))
                    .bind(&id)
                    .bind(to_micros(audit.at))
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                // Nothing was written when no row changed: `Ok` keeps nothing.
                super::audit::append_if(tx, done != 0, &scope, &audit)
            })
            .await
    }

    async fn unrecorded_expiries(
        &self,
        scope: &TenantScope,
        now: OffsetDateTime,
    ) -> Result<Vec<SupportGrant>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM support_grants WHERE tenant_id = ? AND revoked_at IS NULL AND expiry_recorded = 0 AND expires_at <= ? LIMIT 100"
        );
        dynamic(sql)
            .bind(tid(scope))
            .bind(to_micros(now))
            .fetch_all(self.region(scope)?.read()?)
            .map_err(db)?
            .iter()
            .map(grant_from_row)
            .collect()
    }

    async fn record_expiry(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, id, audit) = (scope.clone(), id.to_owned(), audit.clone());
        region
            .write(move |tx| {
                let done = query("UPDATE support_grants SET expiry_recorded = 1 WHERE tenant_id = ? AND id = ? AND expiry_recorded = 0")
                    .bind(tid(&scope))
                    .bind(&id)
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                if done == 1 {
                    super::audit::append(tx, &scope, &audit)?;
                }
                Ok(())
            })
            .await
    }
}
