//! SQL for applications (OAuth 2.0 clients). Every statement binds `tenant_id` from the
//! caller's scope; registration and status changes append their audit entry in the same
//! transaction.

use async_trait::async_trait;
use strongroom_core::access::rbac::Permission;
use strongroom_core::access::{Scoped, TenantScope, WritableScope};
use strongroom_core::identity::application::{AppId, Application, StoredApplication};
use strongroom_core::store::{ApplicationStore, AuditEvent, StoreError};

use super::directory::uuid;
use super::{SqliteRow, SqliteStore, dynamic, query, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

const SELECT: &str = "SELECT a.id, a.name, a.secret_hash, a.permissions, a.active, a.created_at, h.slug FROM applications a JOIN tenant_homes h ON h.tenant_id = a.tenant_id";

fn from_row(r: &SqliteRow) -> Result<StoredApplication, StoreError> {
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
impl ApplicationStore for SqliteStore {
    async fn insert_application(
        &self,
        scope: &WritableScope,
        a: &StoredApplication,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, a, created_by, audit) = (
            scope.clone(),
            a.clone(),
            created_by.to_owned(),
            audit.clone(),
        );
        region
            .write(move |tx| {
                let names: Vec<&str> = a.app.permissions.iter().map(|p| p.as_str()).collect();
                query("INSERT INTO applications (tenant_id, id, name, secret_hash, permissions, active, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(a.app.id.to_string())
                    .bind(&a.app.name)
                    .bind(a.secret_hash.as_slice())
                    .bind(names.join(" "))
                    .bind(i64::from(a.app.active))
                    .bind(&created_by)
                    .bind(to_micros(a.app.created_at))
                    .execute(tx)
                    .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn application(
        &self,
        scope: &dyn Scoped,
        id: AppId,
    ) -> Result<Option<StoredApplication>, StoreError> {
        let region = self.region(scope)?;
        dynamic(format!("{SELECT} WHERE a.tenant_id = ? AND a.id = ?"))
            .bind(tid(scope))
            .bind(id.to_string())
            .fetch_optional(region.read()?)
            .map_err(db)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    async fn applications(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<StoredApplication>, StoreError> {
        let region = self.region(scope)?;
        dynamic(format!(
            "{SELECT} WHERE a.tenant_id = ? ORDER BY a.id LIMIT ?"
        ))
        .bind(tid(scope))
        .bind(i64::from(limit))
        .fetch_all(region.read()?)
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn set_application_active(
        &self,
        scope: &WritableScope,
        id: AppId,
        active: bool,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, audit) = (scope.clone(), audit.clone());
        region
            .write(move |tx| {
                let n = query("UPDATE applications SET active = ? WHERE tenant_id = ? AND id = ?")
                    .bind(i64::from(active))
                    .bind(tid(&scope))
                    .bind(id.to_string())
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                super::audit::append_if(tx, n != 0, &scope, &audit)
            })
            .await
    }
}
