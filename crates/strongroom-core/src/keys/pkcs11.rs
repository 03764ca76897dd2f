//! A root key held on a PKCS#11 token (an HSM; SoftHSM2 in tests).
//!
//! The key is an AES-256 secret-key object with `CKA_SENSITIVE` and not
//! `CKA_EXTRACTABLE`: it never leaves the token. Wrapping is AES-256-GCM computed *by the
//! token* (`CKM_AES_GCM`), with the same layout and associated data as the local
//! provider: `0x02 || iv (12) || ciphertext || tag (16)`.
//!
//! Every operation opens its own session (cheap), runs on a blocking thread, and maps
//! token failures to [`KeyError::Unavailable`] so readiness fails and writes stop; a
//! long-lived session keeps the token logged in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::{KeyError, KeyProvider};
use crate::config::Pkcs11Config;
use crate::secret::{SecretBytes, SecretString};

const FORMAT: u8 = 0x02;
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
const WRAP_DOMAIN: &[u8] = b"strongroom/root-wrap/v1\0";

/// A provider backed by one key on one PKCS#11 token.
#[derive(Clone)]
pub struct Pkcs11Provider {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    module: PathBuf,
    token_label: String,
    key_label: String,
    pin: SecretString,
    ctx: Pkcs11,
    /// Holds the token's login state (PKCS#11 logins are per application, not per
    /// session) and is re-created after a token failure.
    login: Mutex<Option<(Slot, Session)>>,
}

impl std::fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("name", &self.inner.name)
            .field("token", &self.inner.token_label)
            .field("key", &self.inner.key_label)
            .finish_non_exhaustive()
    }
}

/// PKCS#11 modules are initialised once per process (C_Initialize is process-global by
/// the standard), so contexts are shared by module path.
fn context(module: &Path) -> Result<Pkcs11, KeyError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = modules.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module)
        .map_err(|e| KeyError::Unavailable(format!("loading {}: {e}", module.display())))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyError::Unavailable(format!(
                "initialising {}: {e}",
                module.display()
            )));
        }
    }
    modules.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

impl Pkcs11Provider {
    /// Connects to the token, logs in, and creates the key if the token has none with
    /// this label. Blocking: call from a blocking context or at start-up.
    pub fn open(name: &str, config: &Pkcs11Config) -> Result<Self, KeyError> {
        let pin = match (&config.pin, &config.pin_file) {
            (Some(pin), _) => pin.clone(),
            (None, Some(file)) => read_pin(file)?,
            (None, None) => return Err(KeyError::Unavailable("no PIN configured".into())),
        };
        let provider = Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                module: config.module.clone(),
                token_label: config.token_label.clone(),
                key_label: config.key_label.clone(),
                pin,
                ctx: context(&config.module)?,
                login: Mutex::new(None),
            }),
        };
        // A token that is down at start-up is reported by health checks (readiness
        // fails, writes for its tenants are refused) rather than stopping the whole
        // server: one customer's HSM must not take every tenant offline.
        if let Err(e) = provider.inner.ensure_key() {
            tracing::warn!(provider = %name, error = %e, "PKCS#11 token unavailable at start-up");
        }
        Ok(provider)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, KeyError> + Send + 'static,
    ) -> Result<T, KeyError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|_| KeyError::Unavailable("PKCS#11 task failed".into()))?
    }
}

fn read_pin(file: &Path) -> Result<SecretString, KeyError> {
    crate::secret::read_first_line(file).map_err(|source| KeyError::Io {
        path: file.to_owned(),
        source,
    })
}

fn unavailable(e: P11Error) -> KeyError {
    KeyError::Unavailable(format!("PKCS#11: {e}"))
}

impl Inner {
    /// The token's slot, logged in; re-established after a failure.
    fn slot(&self) -> Result<Slot, KeyError> {
        let mut login = self.login.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((slot, _)) = login.as_ref() {
            return Ok(*slot);
        }
        let slot = self
            .ctx
            .get_slots_with_token()
            .map_err(unavailable)?
            .into_iter()
            .find(|s| {
                self.ctx
                    .get_token_info(*s)
                    .is_ok_and(|t| t.label() == self.token_label)
            })
            .ok_or_else(|| {
                KeyError::Unavailable(format!("no token labelled `{}`", self.token_label))
            })?;
        let session = self.ctx.open_rw_session(slot).map_err(unavailable)?;
        let pin = AuthPin::new(self.pin.expose().to_owned().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(unavailable(e)),
        }
        *login = Some((slot, session));
        Ok(slot)
    }

    fn forget_login(&self) {
        *self.login.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `f` in a fresh session with the key's handle; a token failure drops the
    /// login so the next call reconnects.
    fn with_key<T>(
        &self,
        f: impl FnOnce(&Session, ObjectHandle) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let result = self.slot().and_then(|slot| {
            let session = self.ctx.open_rw_session(slot).map_err(unavailable)?;
            let key = self.find_key(&session)?.ok_or_else(|| {
                KeyError::Unavailable(format!("no key labelled `{}` on the token", self.key_label))
            })?;
            f(&session, key)
        });
        if matches!(result, Err(KeyError::Unavailable(_))) {
            self.forget_login();
        }
        result
    }

    fn find_key(&self, session: &Session) -> Result<Option<ObjectHandle>, KeyError> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        let Some(key) = session
            .find_objects(&template)
            .map_err(unavailable)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        self.check_protected(session, key)?;
        Ok(Some(key))
    }

    /// Refuses a key the token would reveal: it must be `CKA_SENSITIVE` and not
    /// `CKA_EXTRACTABLE` (a key imported or created by other tools may be neither).
    /// Checked on every use, which is one attribute read next to an encryption.
    fn check_protected(&self, session: &Session, key: ObjectHandle) -> Result<(), KeyError> {
        let attributes = session
            .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(unavailable)?;
        let (mut sensitive, mut extractable) = (false, true);
        for a in attributes {
            match a {
                Attribute::Sensitive(v) => sensitive = v,
                Attribute::Extractable(v) => extractable = v,
                _ => {}
            }
        }
        if sensitive && !extractable {
            return Ok(());
        }
        Err(KeyError::Unavailable(format!(
            "key `{}` on token `{}` is {}: refusing to use a key the token would reveal; \
             create one with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false (or remove it and \
             let Strongroom create it)",
            self.key_label,
            self.token_label,
            if extractable {
                "extractable"
            } else {
                "not sensitive"
            }
        )))
    }

    fn ensure_key(&self) -> Result<(), KeyError> {
        let slot = self.slot()?;
        let session = self.ctx.open_rw_session(slot).map_err(unavailable)?;
        if self.find_key(&session)?.is_some() {
            return Ok(());
        }
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            // Least privilege: the key only encrypts and decrypts (our wrapping is
            // AES-GCM encryption of key bytes); no token-level wrap, sign or derive.
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::ValueLen(32u64.into()),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(unavailable)?;
        tracing::info!(provider = %self.name, token = %self.token_label, key = %self.key_label, "created non-extractable AES-256 root key on the token");
        Ok(())
    }
}

fn aad(context: &[u8]) -> Vec<u8> {
    [WRAP_DOMAIN, context].concat()
}

#[async_trait]
impl KeyProvider for Pkcs11Provider {
    fn describe(&self) -> String {
        format!(
            "pkcs11:{} (token `{}`, key `{}`)",
            self.inner.module.display(),
            self.inner.token_label,
            self.inner.key_label
        )
    }

    async fn wrap(&self, key: &SecretBytes, context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let key = key.clone();
        let aad = aad(context);
        self.blocking(move |inner| {
            let mut iv = [0u8; IV_LEN];
            aws_lc_rs::rand::fill(&mut iv)
                .map_err(|_| KeyError::Unavailable("system RNG failed".into()))?;
            let sealed = inner.with_key(|session, handle| {
                let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into()).map_err(unavailable)?;
                session
                    .encrypt(&Mechanism::AesGcm(params), handle, key.expose())
                    .map_err(unavailable)
            })?;
            Ok([&[FORMAT][..], &iv, &sealed].concat())
        })
        .await
    }

    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<SecretBytes, KeyError> {
        if wrapped.len() < 1 + IV_LEN + 16 || wrapped[0] != FORMAT {
            return Err(KeyError::Malformed("not a PKCS#11-wrapped key"));
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&wrapped[1..1 + IV_LEN]);
        let body = wrapped[1 + IV_LEN..].to_vec();
        let aad = aad(context);
        self.blocking(move |inner| {
            inner.with_key(|session, handle| {
                let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into()).map_err(unavailable)?;
                match session.decrypt(&Mechanism::AesGcm(params), handle, &body) {
                    Ok(plain) => Ok(SecretBytes::new(plain)),
                    Err(P11Error::Pkcs11(
                        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                        _,
                    )) => Err(KeyError::Integrity),
                    Err(e) => Err(unavailable(e)),
                }
            })
        })
        .await
    }

    async fn health(&self) -> Result<(), KeyError> {
        self.blocking(|inner| inner.with_key(|_, _| Ok(()))).await
    }
}
