//! The operator port on SQLite: operators and token-signing keys in the control
//! database. Changes that the platform trail records are appended to it (it lives in
//! the same database) in the same transaction.

use async_trait::async_trait;
use strongroom_core::access::{PlatformScope, platform_log};
use strongroom_core::identity::Email;
use strongroom_core::identity::operator::{Operator, OperatorCredentials, OperatorId};
use strongroom_core::store::{AuditEvent, OperatorStore, StoreError, StoredSigningKey};

use super::directory::{corrupt, uuid};
use super::{SqliteRow, SqliteStore, dynamic, query};
use crate::error::{db, map};
use crate::time_codec::{from_micros, to_micros};

const OPERATOR: &str =
    "SELECT id, email, password_hash, created_at, disabled_at, mfa FROM operators";

fn operator_from_row(r: &SqliteRow) -> Result<Operator, StoreError> {
    let disabled: Option<i64> = r.try_get("disabled_at").map_err(db)?;
    Ok(Operator {
        id: OperatorId::from_uuid(uuid(&r.try_get::<String, _>("id").map_err(db)?)?),
        email: Email::parse(&r.try_get::<String, _>("email").map_err(db)?).map_err(corrupt)?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
        disabled_at: disabled.map(from_micros).transpose()?,
    })
}

fn key_from_row(r: &SqliteRow) -> Result<StoredSigningKey, StoreError> {
    let revoked: Option<i64> = r.try_get("revoked_at").map_err(db)?;
    Ok(StoredSigningKey {
        kid: r.try_get("kid").map_err(db)?,
        public_key: r.try_get("public_key").map_err(db)?,
        wrapped_private_key: r.try_get("wrapped_private_key").map_err(db)?,
        created_at: from_micros(r.try_get("created_at").map_err(db)?)?,
        revoked_at: revoked.map(from_micros).transpose()?,
    })
}

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn insert_operator(
        &self,
        scope: &PlatformScope,
        op: &Operator,
        hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (log, op, hash, audit) = (
            platform_log(scope),
            op.clone(),
            hash.to_owned(),
            audit.clone(),
        );
        self.control
            .write(move |tx| {
                query("INSERT INTO operators (id, email, email_key, password_hash, created_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(op.id.as_uuid().to_string())
                    .bind(op.email.as_str())
                    .bind(op.email.as_str().to_lowercase())
                    .bind(&hash)
                    .bind(to_micros(op.created_at))
                    .execute(tx)
                    .map_err(|e| map(e, "operator e-mail"))?;
                super::audit::append(tx, &log, &audit)?;
                Ok(())
            })
            .await
    }

    async fn operator_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<OperatorCredentials>, StoreError> {
        let sql = format!("{OPERATOR} WHERE email_key = ?");
        let row = dynamic(sql)
            .bind(email.as_str().to_lowercase())
            .fetch_optional(self.control.read()?)
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OperatorCredentials {
            operator: operator_from_row(&row)?,
            password_hash: row.try_get("password_hash").map_err(db)?,
            mfa: row.try_get("mfa").map_err(db)?,
        }))
    }

    async fn operator(&self, id: OperatorId) -> Result<Option<Operator>, StoreError> {
        let sql = format!("{OPERATOR} WHERE id = ?");
        dynamic(sql)
            .bind(id.as_uuid().to_string())
            .fetch_optional(self.control.read()?)
            .map_err(db)?
            .as_ref()
            .map(operator_from_row)
            .transpose()
    }

    async fn operators(&self, _: &PlatformScope, limit: u32) -> Result<Vec<Operator>, StoreError> {
        let sql = format!("{OPERATOR} ORDER BY email_key LIMIT ?");
        dynamic(sql)
            .bind(i64::from(limit))
            .fetch_all(self.control.read()?)
            .map_err(db)?
            .iter()
            .map(operator_from_row)
            .collect()
    }

    async fn disable_operator(
        &self,
        scope: &PlatformScope,
        id: OperatorId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let (log, audit) = (platform_log(scope), audit.clone());
        self.control
            .write(move |tx| {
                let done = query(
                    "UPDATE operators SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL",
                )
                .bind(to_micros(audit.at))
                .bind(id.as_uuid().to_string())
                .execute(tx)
                .map_err(db)?
                .rows_affected();
                // Nothing was written when no row changed: `Ok` keeps nothing.
                super::audit::append_if(tx, done != 0, &log, &audit)
            })
            .await
    }

    async fn set_operator_mfa(
        &self,
        scope: &PlatformScope,
        id: OperatorId,
        wrapped: Option<&[u8]>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let (log, wrapped, audit) = (
            platform_log(scope),
            wrapped.map(<[u8]>::to_vec),
            audit.cloned(),
        );
        self.control
            .write(move |tx| {
                query("UPDATE operators SET mfa = ? WHERE id = ?")
                    .bind(wrapped)
                    .bind(id.as_uuid().to_string())
                    .execute(tx)
                    .map_err(db)?;
                if let Some(event) = &audit {
                    super::audit::append(tx, &log, event)?;
                }
                Ok(())
            })
            .await
    }

    async fn replace_operator_mfa(
        &self,
        _: &PlatformScope,
        id: OperatorId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (old, new) = (old.to_vec(), new.to_vec());
        let done = self
            .control
            .write(move |tx| {
                query("UPDATE operators SET mfa = ? WHERE id = ? AND mfa = ?")
                    .bind(new)
                    .bind(id.as_uuid().to_string())
                    .bind(old)
                    .execute(tx)
                    .map_err(db)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        query("SELECT kid, public_key, wrapped_private_key, created_at, revoked_at FROM signing_keys ORDER BY created_at DESC, kid")
            .fetch_all(self.control.read()?)
            .map_err(db)?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn insert_signing_key(
        &self,
        scope: &PlatformScope,
        key: &StoredSigningKey,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let (log, key, audit) = (platform_log(scope), key.clone(), audit.cloned());
        self.control
            .write(move |tx| {
                query("INSERT INTO signing_keys (kid, public_key, wrapped_private_key, created_at) VALUES (?, ?, ?, ?)")
                    .bind(&key.kid)
                    .bind(&key.public_key)
                    .bind(&key.wrapped_private_key)
                    .bind(to_micros(key.created_at))
                    .execute(tx)
                    .map_err(|e| map(e, "signing key"))?;
                if let Some(event) = &audit {
                    super::audit::append(tx, &log, event)?;
                }
                Ok(())
            })
            .await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let kid = kid.to_owned();
        self.control
            .write(move |tx| {
                query("DELETE FROM signing_keys WHERE kid = ?")
                    .bind(&kid)
                    .execute(tx)
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn revoke_signing_key(
        &self,
        scope: &PlatformScope,
        kid: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let (log, kid, audit) = (platform_log(scope), kid.to_owned(), audit.clone());
        self.control
            .write(move |tx| {
                let done = query(
                    "UPDATE signing_keys SET revoked_at = ? WHERE kid = ? AND revoked_at IS NULL",
                )
                .bind(to_micros(audit.at))
                .bind(&kid)
                .execute(tx)
                .map_err(db)?
                .rows_affected();
                // Nothing was written when no row changed: `Ok` keeps nothing.
                super::audit::append_if(tx, done != 0, &log, &audit)
            })
            .await
    }
}
