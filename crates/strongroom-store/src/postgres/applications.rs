//! The application port on PostgreSQL: applications (OAuth 2.0 clients) in a region
//! database. Every statement binds `tenant_id` from the caller's scope; registration and
//! status changes append their audit entry in the same transaction.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use strongroom_core::access::rbac::Permission;
use strongroom_core::access::{Scoped, TenantScope, WritableScope};
use strongroom_core::identity::application::{AppId, Application, StoredApplication};
use strongroom_core::store::{ApplicationStore, AuditEvent, StoreError};

use super::directory::uuid;
use super::{PgStore, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

const SELECT: &str = "SELECT a.id, a.name, a.secret_hash, a.permissions, a.active, a.created_at, h.slug FROM applications a JOIN tenant_homes h ON h.tenant_id = a.tenant_id";

fn from_row(r: &PgRow) -> Result<StoredApplication, StoreError> {
    let id = AppId::from_uuid(uuid(&r.try_get::<String, _>("id").map_err(db)?)?);
    let slug: String = r.try_get("slug").map_err(db)?;
    let names: String = r.try_get("permissions").map_err(db)?;
    let permissions = names
        .split_whitespace()
        .map(|n| {
            Permission::parse(n).ok_or_else(|| StoreError::Corrupt(format!("permission {n:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hash: Vec<u8> = r.try_get("secret_hash").map_err(db)?;
    Ok(StoredApplication {
        app: Application {
            id,
            client_id: format!("{slug}.{id}"),
            name: r.try_get("name").map_err(db)?,
            permissions,
            active: r.try_get::<i64, _>("active").map_err(db)? == 1,
            created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
        },
        secret_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("secret hash length".into()))?,
    })
}

#[async_trait]
impl ApplicationStore for PgStore {
    async fn insert_application(
        &self,
        scope: &WritableScope,
        a: &StoredApplication,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        let names: Vec<&str> = a.app.permissions.iter().map(|p| p.as_str()).collect();
        sqlx::query("INSERT INTO applications (tenant_id, id, name, secret_hash, permissions, active, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(tid(scope))
            .bind(a.app.id.to_string())
            .bind(&a.app.name)
            .bind(a.secret_hash.to_vec())
            .bind(names.join(" "))
            .bind(i64::from(a.app.active))
            .bind(created_by)
            .bind(to_micros(a.app.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn application(
        &self,
        scope: &dyn Scoped,
        id: AppId,
    ) -> Result<Option<StoredApplication>, StoreError> {
        let mut tx = self.read(scope).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.tenant_id = $1 AND a.id = $2"
        )))
        .bind(tid(scope))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn applications(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<StoredApplication>, StoreError> {
        let mut tx = self.read(scope).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE a.tenant_id = $1 ORDER BY a.id LIMIT $2"
        )))
        .bind(tid(scope))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(from_row).collect()
    }

    async fn set_application_active(
        &self,
        scope: &WritableScope,
        id: AppId,
        active: bool,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write(scope).await?;
        let n = sqlx::query("UPDATE applications SET active = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(i64::from(active))
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }
}
