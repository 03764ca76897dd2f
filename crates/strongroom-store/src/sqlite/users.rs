//! SQL for tenant users, role grants, sessions and refresh tokens. Every statement
//! binds `tenant_id` from the caller's scope; writes that are regulated (user created
//! or changed, session started or revoked) append their audit entry in the same
//! transaction.

use async_trait::async_trait;
use strongroom_core::access::rbac::Role;
use strongroom_core::access::{Scoped, TenantScope, WritableScope};
use strongroom_core::identity::Email;
use strongroom_core::identity::user::{User, UserCredentials, UserId, UserStatus};
use strongroom_core::store::{
    AuditEvent, NewUserRow, Page, StoreError, StoredInvitation, UserChange, UserStore,
};
use time::OffsetDateTime;

use super::directory::uuid;
use super::{Connection, SqliteRow, SqliteStore, query, query_scalar, tid};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

/// The unused invitation `hash`, unexpired at `now`.
fn live_invitation(
    conn: &Connection,
    scope: &(impl Scoped + ?Sized),
    hash: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Option<StoredInvitation>, StoreError> {
    // An operator's invitation is for a tenant's first user only: void once the tenant
    // has one (checked here, inside the accepting transaction too).
    let found = query("SELECT email, role, expires_at FROM invitations i WHERE tenant_id = ? AND hash = ? AND used_at IS NULL AND expires_at > ? AND NOT (created_by LIKE 'operator:%' AND EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = i.tenant_id))")
        .bind(tid(scope))
        .bind(hash.as_slice())
        .bind(to_micros(now))
        .fetch_optional(conn)
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

fn roles_of(
    tx: &Connection,
    scope: &(impl Scoped + ?Sized),
    user: &str,
) -> Result<Vec<Role>, StoreError> {
    let names: Vec<String> = query_scalar(
        "SELECT role FROM role_grants WHERE tenant_id = ? AND user_id = ? ORDER BY role",
    )
    .bind(tid(scope))
    .bind(user)
    .fetch_all(tx)
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
        full_name: r.try_get("full_name").map_err(db)?,
        status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        roles,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
    })
}

fn grant(
    tx: &Connection,
    scope: &TenantScope,
    user: UserId,
    roles: &[Role],
    by: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    for role in roles {
        query("INSERT INTO role_grants (tenant_id, user_id, role, granted_by, granted_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(tid(scope))
            .bind(user.to_string())
            .bind(role.as_str())
            .bind(by)
            .bind(to_micros(at))
            .execute(tx)
            .map_err(db)?;
    }
    Ok(())
}

/// Inserts the user row and its grants inside `tx`.
fn insert_row(
    tx: &Connection,
    scope: &TenantScope,
    row: &NewUserRow,
    roles: &[Role],
) -> Result<(), StoreError> {
    let u = &row.user;
    query("INSERT INTO users (tenant_id, id, email, email_key, password_hash, status, created_at, full_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(tid(scope))
        .bind(u.id.to_string())
        .bind(u.email.as_str())
        .bind(u.email.as_str().to_lowercase())
        .bind(&row.password_hash)
        .bind(u.status.as_str())
        .bind(to_micros(u.created_at))
        .bind(&u.full_name)
        .execute(tx)
        .map_err(|e| map(e, "a user with this e-mail"))?;
    grant(tx, scope, u.id, roles, &row.granted_by, u.created_at)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(
        &self,
        scope: &WritableScope,
        row: &NewUserRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, row, audit) = (scope.clone(), row.clone(), audit.clone());
        region
            .write(move |tx| {
                insert_row(tx, &scope, &row, &row.user.roles)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn user(&self, scope: &dyn Scoped, id: UserId) -> Result<Option<User>, StoreError> {
        // The account and its grants in one statement: one snapshot without a read
        // transaction, on every authenticated request.
        let row = query(
            "SELECT id, email, full_name, status, created_at, (SELECT group_concat(role, ' ') FROM role_grants g WHERE g.tenant_id = u.tenant_id AND g.user_id = u.id) AS roles FROM users u WHERE tenant_id = ? AND id = ?",
        )
        .bind(tid(scope))
        .bind(id.to_string())
        .fetch_optional(self.region(scope)?.read()?)
        .map_err(db)?;
        let Some(r) = row else { return Ok(None) };
        let names: Option<String> = r.try_get("roles").map_err(db)?;
        let roles = names
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|n| !n.is_empty())
            .map(|n| Role::parse(n).ok_or_else(|| StoreError::Corrupt(format!("role {n:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        // group_concat keeps no order of its own: sort as `roles_of` does (by name).
        let mut roles = roles;
        roles.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        user_from_row(&r, roles).map(Some)
    }

    async fn user_credentials(
        &self,
        scope: &dyn Scoped,
        email: &Email,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let region = self.region(scope)?;
        let conn = region.read()?;
        let row = query("SELECT id, email, full_name, status, created_at, password_hash FROM users WHERE tenant_id = ? AND email_key = ?")
            .bind(tid(scope))
            .bind(email.as_str().to_lowercase())
            .fetch_optional(&conn)
            .map_err(db)?;
        let Some(r) = row else { return Ok(None) };
        let id: String = r.try_get("id").map_err(db)?;
        let roles = roles_of(&conn, scope, &id)?;
        Ok(Some(UserCredentials {
            user: user_from_row(&r, roles)?,
            password_hash: r.try_get("password_hash").map_err(db)?,
        }))
    }

    async fn users(
        &self,
        scope: &TenantScope,
        page: &Page<UserId>,
    ) -> Result<Vec<User>, StoreError> {
        let region = self.region(scope)?;
        let conn = region.read()?;
        let rows = query("SELECT id, email, full_name, status, created_at FROM users WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(tid(scope))
            .bind(page.after.map(|a| a.to_string()).unwrap_or_default())
            .bind(i64::from(page.limit))
            .fetch_all(&conn)
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id").map_err(db)?;
            let roles = roles_of(&conn, scope, &id)?;
            out.push(user_from_row(r, roles)?);
        }
        Ok(out)
    }

    async fn update_user(
        &self,
        scope: &WritableScope,
        id: UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<Option<User>, StoreError> {
        let region = self.region(scope)?;
        let (writable, change, audit) = (scope.clone(), change.clone(), audit.clone());
        let found = region
            .write(move |tx| {
                let scope = &writable;
                let exists: Option<String> =
                    query_scalar("SELECT id FROM users WHERE tenant_id = ? AND id = ?")
                        .bind(tid(scope))
                        .bind(id.to_string())
                        .fetch_optional(tx)
                        .map_err(db)?;
                if exists.is_none() {
                    // Nothing written yet: nothing to undo.
                    return Ok(false);
                }
                if let Some(status) = change.status {
                    query("UPDATE users SET status = ? WHERE tenant_id = ? AND id = ?")
                        .bind(status.as_str())
                        .bind(tid(scope))
                        .bind(id.to_string())
                        .execute(tx)
                        .map_err(db)?;
                    if status == UserStatus::Disabled {
                        query("UPDATE sessions SET revoked_at = ? WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL")
                            .bind(to_micros(change.at))
                            .bind(tid(scope))
                            .bind(id.to_string())
                            .execute(tx)
                            .map_err(db)?;
                    }
                }
                if let Some(roles) = &change.roles {
                    query("DELETE FROM role_grants WHERE tenant_id = ? AND user_id = ?")
                        .bind(tid(scope))
                        .bind(id.to_string())
                        .execute(tx)
                        .map_err(db)?;
                    grant(tx, scope, id, roles, &change.granted_by, change.at)?;
                }
                super::audit::append(tx, scope, &audit)?;
                Ok(true)
            })
            .await?;
        if !found {
            return Ok(None);
        }
        self.user(&**scope, id).await
    }

    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: UserId,
        hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, hash, audit) = (scope.clone(), hash.to_owned(), audit.clone());
        region
            .write(move |tx| {
                query("UPDATE users SET password_hash = ? WHERE tenant_id = ? AND id = ?")
                    .bind(&hash)
                    .bind(tid(&scope))
                    .bind(id.to_string())
                    .execute(tx)
                    .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn set_full_name(
        &self,
        scope: &WritableScope,
        id: UserId,
        full_name: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, full_name, audit) = (scope.clone(), full_name.to_owned(), audit.clone());
        region
            .write(move |tx| {
                super::keys::require_live(tx, &scope)?;
                let n = query("UPDATE users SET full_name = ? WHERE tenant_id = ? AND id = ?")
                    .bind(&full_name)
                    .bind(tid(&scope))
                    .bind(id.to_string())
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                if n != 1 {
                    // (tenant_id, id) is the primary key: no row was updated, so there
                    // is nothing to undo.
                    return Ok(false);
                }
                super::audit::append(tx, &scope, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn delete_user(
        &self,
        scope: &WritableScope,
        id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let region = self.region(scope)?;
        let (scope, audit) = (scope.clone(), audit.clone());
        region
            .write(move |tx| {
                let user = id.to_string();
                // The dependents go first (they reference the user); if there turns out
                // to be no such user, what they deleted is undone.
                tx.execute_batch("SAVEPOINT delete_user").map_err(db)?;
                for sql in [
                    "DELETE FROM refresh_tokens WHERE tenant_id = ?1 AND session_id IN (SELECT id FROM sessions WHERE tenant_id = ?1 AND user_id = ?2)",
                    "DELETE FROM sessions WHERE tenant_id = ?1 AND user_id = ?2",
                    "DELETE FROM role_grants WHERE tenant_id = ?1 AND user_id = ?2",
                    "DELETE FROM sealed_values WHERE tenant_id = ?1 AND kind IN ('user-mfa', 'user-passkeys') AND id = ?2",
                ] {
                    query(sql)
                        .bind(tid(&scope))
                        .bind(&user)
                        .execute(tx)
                        .map_err(db)?;
                }
                let n = query("DELETE FROM users WHERE tenant_id = ? AND id = ?")
                    .bind(tid(&scope))
                    .bind(&user)
                    .execute(tx)
                    .map_err(db)?
                    .rows_affected();
                if n == 0 {
                    tx.execute_batch("ROLLBACK TO delete_user; RELEASE delete_user")
                        .map_err(db)?;
                    return Ok(false);
                }
                tx.execute_batch("RELEASE delete_user").map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn insert_invitation(
        &self,
        scope: &WritableScope,
        inv: &StoredInvitation,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, inv, created_by, audit) = (
            scope.clone(),
            inv.clone(),
            created_by.to_owned(),
            audit.clone(),
        );
        region
            .write(move |tx| {
                query("INSERT INTO invitations (tenant_id, hash, email, role, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(inv.hash.as_slice())
                    .bind(inv.email.as_str())
                    .bind(inv.role.as_str())
                    .bind(&created_by)
                    .bind(to_micros(audit.at))
                    .bind(to_micros(inv.expires_at))
                    .execute(tx)
                    .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn invitation(
        &self,
        scope: &dyn Scoped,
        hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<StoredInvitation>, StoreError> {
        let conn = self.region(scope)?.read()?;
        live_invitation(&conn, scope, hash, now)
    }

    async fn has_users(&self, scope: &dyn Scoped) -> Result<bool, StoreError> {
        let found: Option<i64> = query_scalar("SELECT 1 FROM users WHERE tenant_id = ? LIMIT 1")
            .bind(tid(scope))
            .fetch_optional(self.region(scope)?.read()?)
            .map_err(db)?;
        Ok(found.is_some())
    }

    async fn accept_invitation(
        &self,
        scope: &WritableScope,
        hash: &[u8; 32],
        row: &NewUserRow,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<StoredInvitation>, StoreError> {
        let region = self.region(scope)?;
        let (scope, hash, row, audit) = (scope.clone(), *hash, row.clone(), audit.clone());
        region
            .write(move |tx| {
                // The two early returns come before anything is written.
                let Some(inv) = live_invitation(tx, &scope, &hash, now)? else {
                    return Ok(None);
                };
                // The token alone is not enough: the invitee names the address it was
                // sent to.
                if inv.email.as_str().to_lowercase() != row.user.email.as_str().to_lowercase() {
                    return Ok(None);
                }
                query("UPDATE invitations SET used_at = ? WHERE tenant_id = ? AND hash = ?")
                    .bind(to_micros(now))
                    .bind(tid(&scope))
                    .bind(hash.as_slice())
                    .execute(tx)
                    .map_err(db)?;
                insert_row(tx, &scope, &row, &[inv.role])?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(Some(inv))
            })
            .await
    }
}
