//! The user port on PostgreSQL: tenant users, role grants and invitations in a region
//! database. Every statement binds `tenant_id` from the caller's scope; writes that are
//! regulated (user created or changed, invitation issued or accepted) append their
//! audit entry in the same transaction, under the tenant's write lock.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use strongroom_core::access::rbac::Role;
use strongroom_core::access::{Scoped, TenantScope, WritableScope};
use strongroom_core::identity::Email;
use strongroom_core::identity::user::{User, UserCredentials, UserId, UserStatus};
use strongroom_core::store::{
    AuditEvent, NewUserRow, Page, StoreError, StoredInvitation, UserChange, UserStore,
};
use time::OffsetDateTime;

use super::directory::uuid;
use super::{PgStore, Tx, tid};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

/// The unused invitation `hash`, unexpired at `now`.
async fn live_invitation(
    conn: &mut PgConnection,
    scope: &(impl Scoped + ?Sized),
    hash: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Option<StoredInvitation>, StoreError> {
    // An operator's invitation is for a tenant's first user only: void once the tenant
    // has one (checked here, inside the accepting transaction too). `created_by` is
    // always written in lower case, so PostgreSQL's case-sensitive LIKE matches what
    // SQLite's case-insensitive one did.
    let found = sqlx::query("SELECT email, role, expires_at FROM invitations i WHERE tenant_id = $1 AND hash = $2 AND used_at IS NULL AND expires_at > $3 AND NOT (created_by LIKE 'operator:%' AND EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = i.tenant_id))")
        .bind(tid(scope))
        .bind(hash.to_vec())
        .bind(to_micros(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let Some(r) = found else { return Ok(None) };
    let role: String = r.try_get("role").map_err(db)?;
    Ok(Some(StoredInvitation {
        hash: *hash,
        email: Email::parse(&r.try_get::<String, _>("email").map_err(db)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        expires_at: from_micros(r.try_get("expires_at").map_err(db)?)?,
    }))
}

async fn roles_of(
    conn: &mut PgConnection,
    scope: &(impl Scoped + ?Sized),
    user: &str,
) -> Result<Vec<Role>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT role FROM role_grants WHERE tenant_id = $1 AND user_id = $2 ORDER BY role",
    )
    .bind(tid(scope))
    .bind(user)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    names
        .iter()
        .map(|n| Role::parse(n).ok_or_else(|| StoreError::Corrupt(format!("role {n:?}"))))
        .collect()
}

fn user_from_row(r: &PgRow, roles: Vec<Role>) -> Result<User, StoreError> {
    let status: String = r.try_get("status").map_err(db)?;
    Ok(User {
        id: UserId::from_uuid(uuid(&r.try_get::<String, _>("id").map_err(db)?)?),
        email: Email::parse(&r.try_get::<String, _>("email").map_err(db)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        full_name: r.try_get("full_name").map_err(db)?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        roles,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
    })
}

/// User `id` with its roles, read on `conn` (a snapshot, or the write transaction that
/// just changed the user).
async fn load_user(
    conn: &mut PgConnection,
    scope: &(impl Scoped + ?Sized),
    id: UserId,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(
        "SELECT id, email, full_name, status, created_at FROM users WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tid(scope))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(r) = row else { return Ok(None) };
    let roles = roles_of(conn, scope, &id.to_string()).await?;
    user_from_row(&r, roles).map(Some)
}

async fn grant(
    tx: &mut Tx,
    scope: &TenantScope,
    user: UserId,
    roles: &[Role],
    by: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    for role in roles {
        sqlx::query("INSERT INTO role_grants (tenant_id, user_id, role, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
            .bind(tid(scope))
            .bind(user.to_string())
            .bind(role.as_str())
            .bind(by)
            .bind(to_micros(at))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Inserts the user row and its grants inside `tx`.
async fn insert_row(
    tx: &mut Tx,
    scope: &TenantScope,
    row: &NewUserRow,
    roles: &[Role],
) -> Result<(), StoreError> {
    let u = &row.user;
    sqlx::query("INSERT INTO users (tenant_id, id, email, email_key, password_hash, status, created_at, full_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(tid(scope))
        .bind(u.id.to_string())
        .bind(u.email.as_str())
        .bind(u.email.as_str().to_lowercase())
        .bind(&row.password_hash)
        .bind(u.status.as_str())
        .bind(to_micros(u.created_at))
        .bind(&u.full_name)
        .execute(&mut **tx)
        .await
        .map_err(|e| map(e, "a user with this e-mail"))?;
    grant(tx, scope, u.id, roles, &row.granted_by, u.created_at).await
}

/// Applies `change` to user `id` inside `tx` (the user exists).
async fn apply_change(
    tx: &mut Tx,
    scope: &WritableScope,
    id: UserId,
    change: &UserChange,
) -> Result<(), StoreError> {
    if let Some(status) = change.status {
        sqlx::query("UPDATE users SET status = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(status.as_str())
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        if status == UserStatus::Disabled {
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(to_micros(change.at))
                .bind(tid(scope))
                .bind(id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
    }
    if let Some(roles) = &change.roles {
        sqlx::query("DELETE FROM role_grants WHERE tenant_id = $1 AND user_id = $2")
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        grant(tx, scope, id, roles, &change.granted_by, change.at).await?;
    }
    Ok(())
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(
        &self,
        scope: &WritableScope,
        row: &NewUserRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        insert_row(&mut tx, scope, row, &row.user.roles).await?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn user(&self, scope: &dyn Scoped, id: UserId) -> Result<Option<User>, StoreError> {
        // One snapshot: the user row and its grants as one state.
        let mut tx = self.snapshot(scope).await?;
        let user = load_user(&mut tx, scope, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(user)
    }

    async fn user_credentials(
        &self,
        scope: &dyn Scoped,
        email: &Email,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let mut tx = self.snapshot(scope).await?;
        let row = sqlx::query("SELECT id, email, full_name, status, created_at, password_hash FROM users WHERE tenant_id = $1 AND email_key = $2")
        .bind(tid(scope))
        .bind(email.as_str().to_lowercase())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let found = match row {
            None => None,
            Some(r) => {
                let id: String = r.try_get("id").map_err(db)?;
                let roles = roles_of(&mut tx, scope, &id).await?;
                Some(UserCredentials {
                    user: user_from_row(&r, roles)?,
                    password_hash: r.try_get("password_hash").map_err(db)?,
                })
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(found)
    }

    async fn users(
        &self,
        scope: &TenantScope,
        page: &Page<UserId>,
    ) -> Result<Vec<User>, StoreError> {
        // One snapshot for the page and every user's grants. Ids are lower-case UUID
        // strings, which sort the same under any collation as under SQLite's BINARY.
        let mut tx = self.snapshot(scope).await?;
        let rows = sqlx::query("SELECT id, email, full_name, status, created_at FROM users WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3")
        .bind(tid(scope))
        .bind(page.after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(page.limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id").map_err(db)?;
            let roles = roles_of(&mut tx, scope, &id).await?;
            out.push(user_from_row(r, roles)?);
        }
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn update_user(
        &self,
        scope: &WritableScope,
        id: UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.write(scope).await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tid(scope))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if exists.is_none() {
            return Ok(None);
        }
        apply_change(&mut tx, scope, id, change).await?;
        super::audit::append(&mut tx, scope, audit).await?;
        // Read back inside the write transaction: the user exactly as this change left it.
        let user = load_user(&mut tx, &**scope, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(user)
    }

    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: UserId,
        hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(hash)
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn set_full_name(
        &self,
        scope: &WritableScope,
        id: UserId,
        full_name: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write(scope).await?;
        super::keys::require_live(&mut tx, scope).await?;
        let n = sqlx::query("UPDATE users SET full_name = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(full_name)
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn delete_user(
        &self,
        scope: &WritableScope,
        id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write(scope).await?;
        let user = id.to_string();
        for sql in [
            "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND session_id IN (SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2)",
            "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM role_grants WHERE tenant_id = $1 AND user_id = $2",
            "DELETE FROM sealed_values WHERE tenant_id = $1 AND kind IN ('user-mfa', 'user-passkeys') AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(tid(scope))
                .bind(&user)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let n = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tid(scope))
            .bind(&user)
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

    async fn insert_invitation(
        &self,
        scope: &WritableScope,
        inv: &StoredInvitation,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        sqlx::query("INSERT INTO invitations (tenant_id, hash, email, role, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(tid(scope))
            .bind(inv.hash.to_vec())
            .bind(inv.email.as_str())
            .bind(inv.role.as_str())
            .bind(created_by)
            .bind(to_micros(audit.at))
            .bind(to_micros(inv.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn invitation(
        &self,
        scope: &dyn Scoped,
        hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<StoredInvitation>, StoreError> {
        let mut tx = self.read(scope).await?;
        let found = live_invitation(&mut tx, scope, hash, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(found)
    }

    async fn has_users(&self, scope: &dyn Scoped) -> Result<bool, StoreError> {
        // `EXISTS` is a boolean; a bare `SELECT 1` would be INT4, not the INT8 that
        // decodes as `i64`.
        let mut tx = self.read(scope).await?;
        let found: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1)")
                .bind(tid(scope))
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(found)
    }

    async fn accept_invitation(
        &self,
        scope: &WritableScope,
        hash: &[u8; 32],
        row: &NewUserRow,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<StoredInvitation>, StoreError> {
        let mut tx = self.write(scope).await?;
        let Some(inv) = live_invitation(&mut tx, scope, hash, now).await? else {
            return Ok(None);
        };
        // The token alone is not enough: the invitee names the address it was sent to.
        if inv.email.as_str().to_lowercase() != row.user.email.as_str().to_lowercase() {
            return Ok(None);
        }
        sqlx::query("UPDATE invitations SET used_at = $1 WHERE tenant_id = $2 AND hash = $3")
            .bind(to_micros(now))
            .bind(tid(scope))
            .bind(hash.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_row(&mut tx, scope, row, &[inv.role]).await?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(inv))
    }
}
