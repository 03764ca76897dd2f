//! Personal data in audit entries, sealed under per-subject keys so it can be erased
//! without breaking a single proof.
//!
//! Each acting subject (an operator, later a user or an application) gets, per tenant,
//! a random 256-bit *subject key*, wrapped by the root key provider with context
//! `audit-subject:<tenant uuid>:<key id>`. The request's [`Origin`] (IP address, user
//! agent) is sealed under it in the sealed-value format (docs/formats/encryption.md,
//! kind `audit-personal`, id = key id, version 1) and the entry carries only that
//! ciphertext and the key id. The leaf hash covers the ciphertext, so destroying the
//! subject key later (erasure) makes the data unreadable and changes no byte the Merkle
//! tree committed to.
//!
//! The key is wrapped by the root provider rather than by the tenant's keys for the
//! same reason the audit signing key is (decision 0004): the trail outlives the tenant's
//! data keys. Shredding a tenant erases its subject keys too.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::entry::SealedPersonal;
use super::origin::{self, Origin};
use crate::access::{Principal, TenantScope};
use crate::clock::SharedClock;
use crate::keys::{DataKey, KeyError, KeyProvider, KeyringError, ObjectRef, aead, sealed};
use crate::secret::SecretBytes;
use crate::store::{AuditStore, StoredSubjectKey};

/// Kind under which personal data is sealed.
pub const KIND: &str = "audit-personal";

/// Seals and opens the personal data of audit entries.
#[derive(Clone)]
pub struct Personal {
    store: Arc<dyn AuditStore>,
    root: Arc<dyn KeyProvider>,
    clock: SharedClock,
}

impl std::fmt::Debug for Personal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Personal").finish_non_exhaustive()
    }
}

fn context(scope: &TenantScope, key_id: &str) -> Vec<u8> {
    format!("audit-subject:{}:{key_id}", scope.tenant().as_uuid()).into_bytes()
}

/// The subject whose personal data a principal's origin is: network principals only
/// (the local administrator and the system have no origin worth recording).
pub fn subject_of(principal: &Principal) -> Option<String> {
    match principal {
        // Failed sign-ins by unknown people share one "anonymous" subject per tenant.
        Principal::Operator(_)
        | Principal::User(_)
        | Principal::Application(_)
        | Principal::Anonymous => Some(principal.label()),
        Principal::LocalAdmin(_) | Principal::System(_) => None,
    }
}

/// What an entry's personal field opened to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The data, readable.
    Data(Origin),
    /// The subject key was destroyed: the data is gone for good.
    Erased,
}

impl Personal {
    /// Personal data sealed with `store` and keys wrapped by `root`.
    pub fn new(store: Arc<dyn AuditStore>, root: Arc<dyn KeyProvider>, clock: SharedClock) -> Self {
        Self { store, root, clock }
    }

    /// Seals the current request's origin for an entry by `scope`'s actor, or `None`
    /// when there is no request or the actor is not a network principal.
    pub async fn seal_current(
        &self,
        scope: &TenantScope,
    ) -> Result<Option<SealedPersonal>, KeyringError> {
        let (Some(origin), Some(subject)) = (origin::current(), subject_of(scope.actor())) else {
            return Ok(None);
        };
        let (key_id, key) = self.subject_key(scope, &subject).await?;
        let json = serde_json::to_vec(&origin)
            .map_err(|_| KeyError::Malformed("personal data does not serialise"))?;
        let object = ObjectRef {
            tenant: scope.tenant(),
            kind: KIND,
            id: &key_id,
            version: 1,
        };
        let boxed = sealed::seal(&DataKey { version: 1, key }, &object, &json)?;
        Ok(Some(SealedPersonal {
            sealed: STANDARD.encode(boxed),
            subject: key_id,
        }))
    }

    /// The subject's live key, created on first use.
    async fn subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
    ) -> Result<(String, SecretBytes), KeyringError> {
        for _ in 0..2 {
            if let Some(StoredSubjectKey {
                key_id,
                wrapped: Some(w),
            }) = self.store.audit_subject_key(scope, subject).await?
            {
                let key = self.root.unwrap(&w, &context(scope, &key_id)).await?;
                return Ok((key_id, key));
            }
            let key_id = uuid::Uuid::new_v4().to_string();
            let key = aead::generate_key()?;
            let wrapped = self.root.wrap(&key, &context(scope, &key_id)).await?;
            let stored = StoredSubjectKey {
                key_id,
                wrapped: Some(wrapped),
            };
            // A concurrent first use may win; the loop then reads the winner's key.
            self.store
                .insert_audit_subject_key(scope, subject, &stored, self.clock.now())
                .await?;
        }
        Err(KeyError::Unavailable("subject key could not be created".into()).into())
    }

    /// Opens the personal data of many entries, unwrapping each subject key once.
    pub async fn open_all(
        &self,
        scope: &TenantScope,
        items: &[Option<SealedPersonal>],
    ) -> Result<Vec<Option<Opened>>, KeyringError> {
        let mut keys: std::collections::HashMap<String, Option<SecretBytes>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(p) = item else {
                out.push(None);
                continue;
            };
            if !keys.contains_key(&p.subject) {
                let key = self.subject_key_by_id(scope, &p.subject).await?;
                keys.insert(p.subject.clone(), key);
            }
            let opened = match keys.get(&p.subject) {
                Some(Some(key)) => Opened::Data(open_with(scope, key, p)?),
                _ => Opened::Erased,
            };
            out.push(Some(opened));
        }
        Ok(out)
    }

    /// A subject key by id: `None` when erased.
    async fn subject_key_by_id(
        &self,
        scope: &TenantScope,
        key_id: &str,
    ) -> Result<Option<SecretBytes>, KeyringError> {
        let Some(stored) = self.store.audit_subject_key_by_id(scope, key_id).await? else {
            // An entry naming a key that never existed was not written by us.
            return Err(KeyError::Integrity.into());
        };
        let Some(wrapped) = stored.wrapped else {
            return Ok(None);
        };
        Ok(Some(
            self.root
                .unwrap(&wrapped, &context(scope, &stored.key_id))
                .await?,
        ))
    }
}

fn open_with(
    scope: &TenantScope,
    key: &SecretBytes,
    personal: &SealedPersonal,
) -> Result<Origin, KeyError> {
    let boxed = STANDARD
        .decode(&personal.sealed)
        .map_err(|_| KeyError::Malformed("personal data is not base64"))?;
    let object = ObjectRef {
        tenant: scope.tenant(),
        kind: KIND,
        id: &personal.subject,
        version: 1,
    };
    let key = DataKey {
        version: 1,
        key: key.clone(),
    };
    let json = sealed::open(&key, &object, &boxed)?;
    serde_json::from_slice(&json).map_err(|_| KeyError::Malformed("personal data is not an origin"))
}
