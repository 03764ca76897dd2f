//! The session port on SQLite: sessions and their single-use refresh tokens (only
//! SHA-256 hashes are stored). Every statement binds `tenant_id` from the scope.

use async_trait::async_trait;
use strongroom_core::access::{Scoped, SignInScope, TenantScope};
use strongroom_core::identity::user::{StoredSession, UserId};
use strongroom_core::store::{AuditEvent, RefreshOutcome, SessionStore, StoreError};
use time::OffsetDateTime;

use super::directory::uuid;
use super::{SqliteRow, SqliteStore, query, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

fn session_from_row(r: &SqliteRow) -> Result<StoredSession, StoreError> {
    let revoked: Option<i64> = r.try_get("revoked_at").map_err(db)?;
    Ok(StoredSession {
        id: r.try_get("id").map_err(db)?,
        user: UserId::from_uuid(uuid(&r.try_get::<String, _>("user_id").map_err(db)?)?),
        expires_at: from_micros(r.try_get("expires_at").map_err(db)?)?,
        revoked: revoked.is_some(),
        restricted: r.try_get::<i64, _>("restricted").map_err(db)? == 1,
        second_factor: r.try_get::<i64, _>("second_factor").map_err(db)? == 1,
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        scope: &TenantScope,
        s: &StoredSession,
        refresh: &[u8; 32],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, s, refresh, audit) = (scope.clone(), s.clone(), *refresh, audit.clone());
        region
            .write(move |tx| {
                query("INSERT INTO sessions (tenant_id, id, user_id, created_at, expires_at, restricted, second_factor) VALUES (?, ?, ?, ?, ?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(&s.id)
                    .bind(s.user.to_string())
                    .bind(to_micros(audit.at))
                    .bind(to_micros(s.expires_at))
                    .bind(i64::from(s.restricted))
                    .bind(i64::from(s.second_factor))
                    .execute(tx)
                    .map_err(db)?;
                query("INSERT INTO refresh_tokens (tenant_id, hash, session_id) VALUES (?, ?, ?)")
                    .bind(tid(&scope))
                    .bind(refresh.as_slice())
                    .bind(&s.id)
                    .execute(tx)
                    .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }

    async fn session(
        &self,
        scope: &dyn Scoped,
        id: &str,
    ) -> Result<Option<StoredSession>, StoreError> {
        let region = self.region(scope)?;
        query(
            "SELECT id, user_id, expires_at, revoked_at, restricted, second_factor FROM sessions WHERE tenant_id = ? AND id = ?",
        )
        .bind(tid(scope))
        .bind(id)
        .fetch_optional(region.read()?)
        .map_err(db)?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn rotate_refresh(
        &self,
        scope: &SignInScope,
        old: &[u8; 32],
        new: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<RefreshOutcome, StoreError> {
        let region = self.region(scope)?;
        let (tenant, old, new) = (tid(scope), *old, *new);
        region
            .write(move |tx| {
                let row = query("SELECT s.id, s.user_id, s.expires_at, s.revoked_at, s.restricted, s.second_factor, r.used_at FROM refresh_tokens r JOIN sessions s ON s.tenant_id = r.tenant_id AND s.id = r.session_id WHERE r.tenant_id = ? AND r.hash = ?")
                    .bind(&tenant)
                    .bind(old.as_slice())
                    .fetch_optional(tx)
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
                    // Replay of a rotated token: the caller revokes the session together
                    // with its audit entry (`revoke_session`); nothing changes here.
                    return Ok(RefreshOutcome::Reused(session));
                }
                query("UPDATE refresh_tokens SET used_at = ? WHERE tenant_id = ? AND hash = ?")
                    .bind(to_micros(now))
                    .bind(&tenant)
                    .bind(old.as_slice())
                    .execute(tx)
                    .map_err(db)?;
                query("INSERT INTO refresh_tokens (tenant_id, hash, session_id) VALUES (?, ?, ?)")
                    .bind(&tenant)
                    .bind(new.as_slice())
                    .bind(&session.id)
                    .execute(tx)
                    .map_err(db)?;
                Ok(RefreshOutcome::Rotated(session))
            })
            .await
    }

    async fn revoke_session(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let region = self.region(scope)?;
        let (scope, id, audit) = (scope.clone(), id.to_owned(), audit.clone());
        region
            .write(move |tx| {
                query(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id = ?",
                )
                .bind(to_micros(audit.at))
                .bind(tid(&scope))
                .bind(&id)
                .execute(tx)
                .map_err(db)?;
                super::audit::append(tx, &scope, &audit)?;
                Ok(())
            })
            .await
    }
}
