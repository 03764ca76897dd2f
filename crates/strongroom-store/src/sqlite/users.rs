//! SQL for tenant users, role grants, sessions and refresh tokens. Every statement
//! binds `tenant_id` from the caller's scope; writes that are regulated (user created
//! or changed, session started or revoked) append their audit entry in the same
//! transaction.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use strongroom_core::access::TenantScope;
use strongroom_core::access::rbac::Role;
use strongroom_core::identity::Email;
use strongroom_core::identity::user::{StoredSession, User, UserCredentials, UserId, UserStatus};
use strongroom_core::store::{
    AuditEvent, NewUserRow, Page, RefreshOutcome, StoreError, StoredInvitation, UserChange,
};
use time::OffsetDateTime;

use super::control::uuid;
use super::{Db, tid};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

async fn roles_of(
    tx: &mut sqlx::SqliteConnection,
    scope: &TenantScope,
    user: &str,
) -> Result<Vec<Role>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT role FROM role_grants WHERE tenant_id = ? AND user_id = ? ORDER BY role",
    )
    .bind(tid(scope))
    .bind(user)
    .fetch_all(tx)
    .await
    .map_err(db)?;
    names
        .iter()
        .map(|n| Role::parse(n).ok_or_else(|| StoreError::Corrupt(format!("role {n:?}"))))
        .collect()
}

fn user_from_row(r: &SqliteRow, roles: Vec<Role>) -> Result<User, StoreError> {
    let status: String = r.try_get("status").map_err(db)?;
    Ok(User {
        id: UserId::from_uuid(uuid(&r.try_get::<String, _>("id").map_err(db)?)?),
        email: Email::parse(&r.try_get::<String, _>("email").map_err(db)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        roles,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
    })
}

async fn grant(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &TenantScope,
    user: UserId,
    roles: &[Role],
    by: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    for role in roles {
        sqlx::query("INSERT INTO role_grants (tenant_id, user_id, role, granted_by, granted_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
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
    tx: &mut Transaction<'static, Sqlite>,
    scope: &TenantScope,
    row: &NewUserRow,
    roles: &[Role],
) -> Result<(), StoreError> {
    let u = &row.user;
    sqlx::query("INSERT INTO users (tenant_id, id, email, email_key, password_hash, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(u.id.to_string())
        .bind(u.email.as_str())
        .bind(u.email.as_str().to_lowercase())
        .bind(&row.password_hash)
        .bind(u.status.as_str())
        .bind(to_micros(u.created_at))
        .execute(&mut **tx)
        .await
        .map_err(|e| map(e, "a user with this e-mail"))?;
    grant(tx, scope, u.id, roles, &row.granted_by, u.created_at).await
}

pub(super) async fn insert(
    region: &Db,
    scope: &TenantScope,
    row: &NewUserRow,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    insert_row(&mut tx, scope, row, &row.user.roles).await?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)
}

pub(super) async fn by_id(
    region: &Db,
    scope: &TenantScope,
    id: UserId,
) -> Result<Option<User>, StoreError> {
    let mut conn = region.read().acquire().await.map_err(db)?;
    let row = sqlx::query(
        "SELECT id, email, status, created_at FROM users WHERE tenant_id = ? AND id = ?",
    )
    .bind(tid(scope))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(r) = row else { return Ok(None) };
    let roles = roles_of(&mut conn, scope, &id.to_string()).await?;
    user_from_row(&r, roles).map(Some)
}

pub(super) async fn credentials(
    region: &Db,
    scope: &TenantScope,
    email: &Email,
) -> Result<Option<UserCredentials>, StoreError> {
    let mut conn = region.read().acquire().await.map_err(db)?;
    let row = sqlx::query("SELECT id, email, status, created_at, password_hash FROM users WHERE tenant_id = ? AND email_key = ?")
        .bind(tid(scope))
        .bind(email.as_str().to_lowercase())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let Some(r) = row else { return Ok(None) };
    let id: String = r.try_get("id").map_err(db)?;
    let roles = roles_of(&mut conn, scope, &id).await?;
    Ok(Some(UserCredentials {
        user: user_from_row(&r, roles)?,
        password_hash: r.try_get("password_hash").map_err(db)?,
    }))
}

pub(super) async fn list(
    region: &Db,
    scope: &TenantScope,
    page: &Page<UserId>,
) -> Result<Vec<User>, StoreError> {
    let mut conn = region.read().acquire().await.map_err(db)?;
    let rows = sqlx::query("SELECT id, email, status, created_at FROM users WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?")
        .bind(tid(scope))
        .bind(page.after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(page.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id").map_err(db)?;
        let roles = roles_of(&mut conn, scope, &id).await?;
        out.push(user_from_row(r, roles)?);
    }
    Ok(out)
}

pub(super) async fn update(
    region: &Db,
    scope: &TenantScope,
    id: UserId,
    change: &UserChange,
    audit: &AuditEvent,
) -> Result<Option<User>, StoreError> {
    let mut tx = region.write().await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = ? AND id = ?")
            .bind(tid(scope))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    if exists.is_none() {
        return Ok(None);
    }
    if let Some(status) = change.status {
        sqlx::query("UPDATE users SET status = ? WHERE tenant_id = ? AND id = ?")
            .bind(status.as_str())
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if status == UserStatus::Disabled {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL")
                .bind(to_micros(change.at))
                .bind(tid(scope))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
    }
    if let Some(roles) = &change.roles {
        sqlx::query("DELETE FROM role_grants WHERE tenant_id = ? AND user_id = ?")
            .bind(tid(scope))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        grant(&mut tx, scope, id, roles, &change.granted_by, change.at).await?;
    }
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)?;
    by_id(region, scope, id).await
}

fn session_from_row(r: &SqliteRow) -> Result<StoredSession, StoreError> {
    let revoked: Option<i64> = r.try_get("revoked_at").map_err(db)?;
    Ok(StoredSession {
        id: r.try_get("id").map_err(db)?,
        user: UserId::from_uuid(uuid(&r.try_get::<String, _>("user_id").map_err(db)?)?),
        expires_at: from_micros(r.try_get("expires_at").map_err(db)?)?,
        revoked: revoked.is_some(),
        restricted: r.try_get::<i64, _>("restricted").map_err(db)? == 1,
    })
}

pub(super) async fn create_session(
    region: &Db,
    scope: &TenantScope,
    s: &StoredSession,
    refresh: &[u8; 32],
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    sqlx::query("INSERT INTO sessions (tenant_id, id, user_id, created_at, expires_at, restricted) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(&s.id)
        .bind(s.user.to_string())
        .bind(to_micros(audit.at))
        .bind(to_micros(s.expires_at))
        .bind(i64::from(s.restricted))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("INSERT INTO refresh_tokens (tenant_id, hash, session_id) VALUES (?, ?, ?)")
        .bind(tid(scope))
        .bind(refresh.to_vec())
        .bind(&s.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)
}

pub(super) async fn session(
    region: &Db,
    scope: &TenantScope,
    id: &str,
) -> Result<Option<StoredSession>, StoreError> {
    sqlx::query(
        "SELECT id, user_id, expires_at, revoked_at, restricted FROM sessions WHERE tenant_id = ? AND id = ?",
    )
    .bind(tid(scope))
    .bind(id)
    .fetch_optional(region.read())
    .await
    .map_err(db)?
    .as_ref()
    .map(session_from_row)
    .transpose()
}

pub(super) async fn rotate_refresh(
    region: &Db,
    scope: &TenantScope,
    old: &[u8; 32],
    new: &[u8; 32],
    now: OffsetDateTime,
) -> Result<RefreshOutcome, StoreError> {
    let mut tx = region.write().await?;
    let row = sqlx::query("SELECT s.id, s.user_id, s.expires_at, s.revoked_at, s.restricted, r.used_at FROM refresh_tokens r JOIN sessions s ON s.tenant_id = r.tenant_id AND s.id = r.session_id WHERE r.tenant_id = ? AND r.hash = ?")
        .bind(tid(scope))
        .bind(old.to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let Some(r) = row else {
        return Ok(RefreshOutcome::Invalid);
    };
    let session = session_from_row(&r)?;
    let used: Option<i64> = r.try_get("used_at").map_err(db)?;
    if session.revoked || session.expires_at <= now {
        return Ok(RefreshOutcome::Invalid);
    }
    if used.is_some() {
        // Replay of a rotated token: whoever holds the family is not to be trusted.
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(to_micros(now))
            .bind(tid(scope))
            .bind(&session.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        return Ok(RefreshOutcome::Reused(StoredSession {
            revoked: true,
            ..session
        }));
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE tenant_id = ? AND hash = ?")
        .bind(to_micros(now))
        .bind(tid(scope))
        .bind(old.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("INSERT INTO refresh_tokens (tenant_id, hash, session_id) VALUES (?, ?, ?)")
        .bind(tid(scope))
        .bind(new.to_vec())
        .bind(&session.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(RefreshOutcome::Rotated(session))
}

pub(super) async fn revoke_session(
    region: &Db,
    scope: &TenantScope,
    id: &str,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    sqlx::query(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id = ?",
    )
    .bind(to_micros(audit.at))
    .bind(tid(scope))
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    super::audit::append(&mut tx, scope, audit).await?;
    tx.commit().await.map_err(db)
}

pub(super) async fn set_password_hash(
    region: &Db,
    scope: &TenantScope,
    id: UserId,
    hash: &str,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE tenant_id = ? AND id = ?")
        .bind(hash)
        .bind(tid(scope))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

pub(super) async fn delete(
    region: &Db,
    scope: &TenantScope,
    id: UserId,
    audit: &AuditEvent,
) -> Result<bool, StoreError> {
    let mut tx = region.write().await?;
    let user = id.to_string();
    for sql in [
        "DELETE FROM refresh_tokens WHERE tenant_id = ?1 AND session_id IN (SELECT id FROM sessions WHERE tenant_id = ?1 AND user_id = ?2)",
        "DELETE FROM sessions WHERE tenant_id = ?1 AND user_id = ?2",
        "DELETE FROM role_grants WHERE tenant_id = ?1 AND user_id = ?2",
        "DELETE FROM sealed_values WHERE tenant_id = ?1 AND kind IN ('user-mfa', 'user-passkeys') AND id = ?2",
    ] {
        sqlx::query(sql)
            .bind(tid(scope))
            .bind(&user)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    let n = sqlx::query("DELETE FROM users WHERE tenant_id = ? AND id = ?")
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

pub(super) async fn insert_invitation(
    region: &Db,
    scope: &TenantScope,
    inv: &StoredInvitation,
    created_by: &str,
    audit: &AuditEvent,
) -> Result<(), StoreError> {
    let mut tx = region.write().await?;
    sqlx::query("INSERT INTO invitations (tenant_id, hash, email, role, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
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

pub(super) async fn accept_invitation(
    region: &Db,
    scope: &TenantScope,
    hash: &[u8; 32],
    row: &NewUserRow,
    now: OffsetDateTime,
    audit: &AuditEvent,
) -> Result<Option<StoredInvitation>, StoreError> {
    let mut tx = region.write().await?;
    let found = sqlx::query("SELECT email, role, expires_at FROM invitations WHERE tenant_id = ? AND hash = ? AND used_at IS NULL AND expires_at > ?")
        .bind(tid(scope))
        .bind(hash.to_vec())
        .bind(to_micros(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let Some(r) = found else { return Ok(None) };
    let role: String = r.try_get("role").map_err(db)?;
    let inv = StoredInvitation {
        hash: *hash,
        email: Email::parse(&r.try_get::<String, _>("email").map_err(db)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        expires_at: from_micros(r.try_get("expires_at").map_err(db)?)?,
    };
    // The token alone is not enough: the invitee names the address it was sent to.
    if inv.email.as_str().to_lowercase() != row.user.email.as_str().to_lowercase() {
        return Ok(None);
    }
    sqlx::query("UPDATE invitations SET used_at = ? WHERE tenant_id = ? AND hash = ?")
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
