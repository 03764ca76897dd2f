//! SQL for a region database. Every statement binds `tenant_id` from a [`TenantScope`].

use sqlx::Row;
use strongroom_core::access::TenantScope;
use strongroom_core::store::{AuditEvent, StoreError, TenantKeys};
use strongroom_core::tenant::Tenant;

use super::{Db, tid};
use crate::error::{db, map};
use crate::time_codec::to_micros;

pub(super) async fn insert_home(
    region: &Db,
    scope: &TenantScope,
    tenant: &Tenant,
    keys: &TenantKeys,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    sqlx::query("INSERT INTO tenant_homes (tenant_id, slug, created_at) VALUES (?, ?, ?)")
        .bind(tid(scope))
        .bind(tenant.slug.as_str())
        .bind(to_micros(tenant.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| map(e, "tenant home"))?;
    super::keys::insert_keks_and_deks(&mut tx, scope, keys).await?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)
}

pub(super) async fn home_exists(region: &Db, scope: &TenantScope) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM tenant_homes WHERE tenant_id = ?")
        .bind(tid(scope))
        .fetch_one(region.read())
        .await
        .map_err(db)?;
    Ok(row.try_get::<i64, _>("n").map_err(db)? == 1)
}
