//! The directory port on SQLite: the tenant directory in the control database, and each
//! tenant's home row in its region's database.

use std::collections::BTreeSet;

use async_trait::async_trait;
use strongroom_core::access::{PlatformScope, TenantScope, platform_log};
use strongroom_core::store::{
    AuditEvent, DirectoryStore, Page, PendingWork, StoreError, TenantKeys,
};
use strongroom_core::tenant::{DisplayName, RegionName, Slug, Tenant, TenantId, TenantStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Connection, Db, SqliteRow, SqliteStore, query, query_scalar, tid};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

/// Marks `kind` of work pending for the tenant inside `tx`, up to `mark` (a mark only
/// grows).
pub(super) fn mark_pending(
    tx: &Connection,
    scope: &TenantScope,
    kind: PendingWork,
    mark: u64,
) -> Result<(), StoreError> {
    query("INSERT INTO work_pending (tenant_id, kind, mark) VALUES (?, ?, ?) ON CONFLICT (kind, tenant_id) DO UPDATE SET mark = max(mark, excluded.mark)")
        .bind(tid(scope))
        .bind(kind.as_str())
        .bind(super::int(mark)?)
        .execute(tx)
        .map_err(db)?;
    Ok(())
}

/// Marks re-encryption pending inside `tx` if `dek_version` is older than the tenant's
/// newest data key: an object sealed just before a rotation and committed after the
/// round that found nothing left under the old key would otherwise stay there.
pub(super) fn mark_if_stale(
    tx: &Connection,
    scope: &TenantScope,
    dek_version: u32,
) -> Result<(), StoreError> {
    query("INSERT INTO work_pending (tenant_id, kind, mark) SELECT ?1, 'reencrypt', MAX(version) FROM data_keys WHERE tenant_id = ?1 HAVING MAX(version) > ?2 ON CONFLICT (kind, tenant_id) DO UPDATE SET mark = max(mark, excluded.mark)")
        .bind(tid(scope))
        .bind(i64::from(dek_version))
        .execute(tx)
        .map_err(db)?;
    Ok(())
}

fn insert_tenant(tx: &Connection, t: &Tenant) -> Result<(), StoreError> {
    query("INSERT INTO tenants (id, slug, display_name, region, status, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(t.id.as_uuid().to_string())
        .bind(t.slug.as_str())
        .bind(t.display_name.as_str())
        .bind(t.region.as_str())
        .bind(t.status.as_str())
        .bind(to_micros(t.created_at))
        .execute(tx)
        .map_err(|e| map(e, "tenant slug"))?;
    Ok(())
}

pub(super) fn regions_in_use(control: &Db) -> Result<Vec<String>, StoreError> {
    let rows = query("SELECT DISTINCT region FROM tenants ORDER BY region")
        .fetch_all(control.read()?)
        .map_err(db)?;
    rows.iter()
        .map(|r| r.try_get("region").map_err(db))
        .collect()
}

fn tenant_from_row(r: &SqliteRow) -> Result<Tenant, StoreError> {
    let status: String = r.try_get("status").map_err(db)?;
    Ok(Tenant {
        id: TenantId::from_uuid(uuid(&r.try_get::<String, _>("id").map_err(db)?)?),
        slug: Slug::parse(&r.try_get::<String, _>("slug").map_err(db)?).map_err(corrupt)?,
        display_name: DisplayName::parse(&r.try_get::<String, _>("display_name").map_err(db)?)
            .map_err(corrupt)?,
        region: RegionName::parse(&r.try_get::<String, _>("region").map_err(db)?)
            .map_err(corrupt)?,
        status: TenantStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("tenant status {status}")))?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
    })
}

pub(super) fn uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("bad uuid {s:?}")))
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

async fn insert_home(
    region: &Db,
    scope: &TenantScope,
    tenant: &Tenant,
    keys: &TenantKeys,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let (scope, slug, created_at, keys, audit) = (
        scope.clone(),
        tenant.slug.clone(),
        tenant.created_at,
        keys.clone(),
        audit.clone(),
    );
    region
        .write(move |tx| {
            query("INSERT INTO tenant_homes (tenant_id, slug, created_at) VALUES (?, ?, ?)")
                .bind(tid(&scope))
                .bind(slug.as_str())
                .bind(to_micros(created_at))
                .execute(tx)
                .map_err(|e| map(e, "tenant home"))?;
            super::keys::insert_keks_and_deks(tx, &scope, &keys)?;
            super::audit::append(tx, &scope, &audit)?;
            Ok(())
        })
        .await
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn health(&self) -> Result<(), StoreError> {
        self.control.ping()?;
        for db in self.regions.values() {
            db.ping()?;
        }
        Ok(())
    }

    async fn create_tenant(
        &self,
        scope: &PlatformScope,
        tenant: &Tenant,
        home: &TenantScope,
        keys: &TenantKeys,
        audit: &AuditEvent,
        platform_audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(home)?.clone();
        // Directory first (it holds the unique slug), region home second, directory
        // commit last: a failure anywhere leaves no directory entry. A crash between the
        // two commits leaves only an unreferenced home, which nothing can reach.
        // The directory write stays open on the control database's writer thread while
        // the home is written and committed in the region (that thread waits for the
        // region's writer, as the directory transaction used to wait for the home's
        // commit). A home is never in the platform's pseudo-region, whose database is
        // the control one, so the thread never waits for itself.
        if home.region().is_platform() {
            return Err(StoreError::backend(
                "a tenant's home cannot be in the platform's region",
            ));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::backend("creating a tenant needs the async runtime"))?;
        let (platform, tenant, home, keys, audit, platform_audit) = (
            platform_log(scope),
            tenant.clone(),
            home.clone(),
            keys.clone(),
            audit.clone(),
            platform_audit.clone(),
        );
        self.control
            .write(move |dir_tx| {
                insert_tenant(dir_tx, &tenant)?;
                super::audit::append(dir_tx, &platform, &platform_audit)?;
                runtime.block_on(insert_home(&region, &home, &tenant, &keys, &audit))
            })
            .await
    }

    async fn tenant_home_exists(&self, scope: &TenantScope) -> Result<bool, StoreError> {
        let row = query("SELECT COUNT(*) AS n FROM tenant_homes WHERE tenant_id = ?")
            .bind(tid(scope))
            .fetch_one(self.region(scope)?.read()?)
            .map_err(db)?;
        Ok(row.try_get::<i64, _>("n").map_err(db)? == 1)
    }

    async fn tenant(&self, _: &PlatformScope, slug: &Slug) -> Result<Option<Tenant>, StoreError> {
        let control = &self.control;
        let row = query(
            "SELECT id, slug, display_name, region, status, created_at FROM tenants WHERE slug = ?",
        )
        .bind(slug.as_str())
        .fetch_optional(control.read()?)
        .map_err(db)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenants(
        &self,
        _: &PlatformScope,
        page: Page<Slug>,
    ) -> Result<Vec<Tenant>, StoreError> {
        let control = &self.control;
        let after = page.after.as_ref().map_or("", Slug::as_str);
        let rows = query(
            "SELECT id, slug, display_name, region, status, created_at FROM tenants WHERE slug > ? ORDER BY slug LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(page.limit))
        .fetch_all(control.read()?)
        .map_err(db)?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn pending_work(
        &self,
        kind: PendingWork,
        now: OffsetDateTime,
    ) -> Result<Option<BTreeSet<TenantId>>, StoreError> {
        let mut out = BTreeSet::new();
        for region in self.regions.values() {
            let q = match kind {
                PendingWork::SupportExpiry => query_scalar::<String>(
                    "SELECT DISTINCT tenant_id FROM support_grants WHERE revoked_at IS NULL AND expiry_recorded = 0 AND expires_at <= ?",
                )
                .bind(to_micros(now)),
                _ => query_scalar::<String>("SELECT tenant_id FROM work_pending WHERE kind = ?")
                    .bind(kind.as_str()),
            };
            let ids: Vec<String> = q.fetch_all(region.read()?).map_err(db)?;
            for id in ids {
                out.insert(TenantId::from_uuid(uuid(&id)?));
            }
        }
        Ok(Some(out))
    }

    async fn work_done(
        &self,
        scope: &TenantScope,
        kind: PendingWork,
        done: u64,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let tenant = tid(scope);
        region
            .write(move |tx| {
                query("DELETE FROM work_pending WHERE tenant_id = ? AND kind = ? AND mark <= ?")
                    .bind(&tenant)
                    .bind(kind.as_str())
                    // "Done up to anything" (a shredded tenant) is the largest storable mark.
                    .bind(i64::try_from(done).unwrap_or(i64::MAX))
                    .execute(tx)
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn tenants_by_id(
        &self,
        _: &PlatformScope,
        ids: &BTreeSet<TenantId>,
    ) -> Result<Vec<Tenant>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|i| i.as_uuid().to_string()).collect();
        // One cached lookup per id (by primary key) on one connection, rather than
        // an `IN (...)` list whose every length is another cached statement.
        let conn = self.control.read()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            let row = query(
                "SELECT id, slug, display_name, region, status, created_at FROM tenants WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(&conn)
            .map_err(db)?;
            if let Some(r) = row {
                out.push(tenant_from_row(&r)?);
            }
        }
        out.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
        Ok(out)
    }
}
