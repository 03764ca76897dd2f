//! The session port on PostgreSQL: sessions and their single-use refresh tokens (only
//! SHA-256 hashes are stored) in a region database. Every statement binds `tenant_id`
//! from the scope. Refresh-token rotation reads and writes under the tenant's write
//! lock, so a token is rotated at most once however many server nodes see it.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use strongroom_core::access::{Scoped, SignInScope, TenantScope};
use strongroom_core::identity::user::{StoredSession, UserId};
use strongroom_core::store::{AuditEvent, RefreshOutcome, SessionStore, StoreError};
use time::OffsetDateTime;

use super::directory::uuid;
use super::{PgStore, tid};
use crate::error::db;
use crate::time_codec::{from_micros, to_micros};

fn session_from_row(r: &PgRow) -> Result<StoredSession, StoreError> {
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
impl SessionStore for PgStore {
    async fn create_session(
        &self,
        scope: &TenantScope,
        s: &StoredSession,
        refresh: &[u8; 32],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        sqlx::query("INSERT INTO sessions (tenant_id, id, user_id, created_at, expires_at, restricted, second_factor) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(tid(scope))
            .bind(&s.id)
            .bind(s.user.to_string())
            .bind(to_micros(audit.at))
            .bind(to_micros(s.expires_at))
            .bind(i64::from(s.restricted))
            .bind(i64::from(s.second_factor))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO refresh_tokens (tenant_id, hash, session_id) VALUES ($1, $2, $3)")
            .bind(tid(scope))
            .bind(refresh.to_vec())
            .bind(&s.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        super::audit::append(&mut tx, scope, audit).await?;
        tx.commit().await.map_err(db)
    }

    async fn session(
        &self,
        scope: &dyn Scoped,
        id: &str,
    ) -> Result<Option<StoredSession>, StoreError> {
        let mut tx = self.read(scope).await?;
        let row = sqlx::query(
            "SELECT id, user_id, expires_at, revoked_at, restricted, second_factor FROM sessions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tid(scope))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn rotate_refresh(
        &self,
        scope: &SignInScope,
        old: &[u8; 32],
        new: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut tx = self.write(scope).await?;
        let row = sqlx::query("SELECT s.id, s.user_id, s.expires_at, s.revoked_at, s.restricted, s.second_factor, r.used_at FROM refresh_tokens r JOIN sessions s ON s.tenant_id = r.tenant_id AND s.id = r.session_id WHERE r.tenant_id = $1 AND r.hash = $2")
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
            // Replay of a rotated token: the caller revokes the session together with
            // its audit entry (`revoke_session`); nothing changes here.
            return Ok(RefreshOutcome::Reused(session));
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE tenant_id = $2 AND hash = $3")
            .bind(to_micros(now))
            .bind(tid(scope))
            .bind(old.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO refresh_tokens (tenant_id, hash, session_id) VALUES ($1, $2, $3)")
            .bind(tid(scope))
            .bind(new.to_vec())
            .bind(&session.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(RefreshOutcome::Rotated(session))
    }

    async fn revoke_session(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write(scope).await?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE tenant_id = $2 AND id = $3",
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
}
