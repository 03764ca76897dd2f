//! Access tokens: short-lived EdDSA (Ed25519) JWTs.
//!
//! Signing is done here with aws-lc-rs, so the private key never leaves a type that
//! wipes it; verification — the part that parses hostile input — is done by the
//! `jsonwebtoken` crate, pinned to `EdDSA` only, with expiry checked against the
//! injected [`Clock`] rather than the system clock. A token whose signature verified
//! is remembered (bounded) so its next requests skip the signature check; its key,
//! audience and times are checked again on every use.

use std::collections::HashMap;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::SharedClock;
use crate::secret::SecretBytes;

/// Tolerance for clock skew between signer and verifier, in seconds.
const LEEWAY_SECS: i64 = 30;

/// Audience of operator tokens: they are good for the platform API and nothing else.
pub const OPERATOR_AUDIENCE: &str = "strongroom:platform";
/// Audience of tenant users' tokens: good only inside the tenant named in `tid`.
pub const TENANT_AUDIENCE: &str = "strongroom:tenant";

/// Why a presented token was refused. All variants answer 401 to the client; the
/// variant is for the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWT, or a claim has the wrong shape.
    #[error("malformed token")]
    Malformed,
    /// Signed with an algorithm other than EdDSA, or by a key we do not know.
    #[error("token signed with an unacceptable algorithm or unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Wrong `iss` or `aud`: a token minted for something else.
    #[error("token was issued for another audience or by another issuer")]
    WrongAudience,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
}

/// An Ed25519 signing key with its key id (RFC 7638 thumbprint).
pub struct SigningKey {
    kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a key; returns it and its PKCS#8 encoding (to be stored wrapped).
    pub fn generate() -> Result<(Self, SecretBytes), TokenKeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| TokenKeyError)?;
        let pkcs8 = SecretBytes::new(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    /// Loads a key from its (unwrapped) PKCS#8 encoding.
    pub fn from_pkcs8(pkcs8: &SecretBytes) -> Result<Self, TokenKeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.expose()).map_err(|_| TokenKeyError)?;
        let kid = thumbprint(pair.public_key().as_ref());
        Ok(Self { kid, pair })
    }

    /// The key id: the RFC 7638 JWK thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// A signing key could not be generated or parsed.
#[derive(Debug, thiserror::Error)]
#[error("Ed25519 key could not be generated or parsed")]
pub struct TokenKeyError;

/// RFC 7638 thumbprint of an Ed25519 public key, base64url.
fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The registered claims every Strongroom token carries, plus its kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: this deployment.
    pub iss: String,
    /// Audience: what the token may be used for.
    pub aud: String,
    /// Subject: `operator:<uuid>` or, later, `user:<uuid>`.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// Tenant users: the tenant's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Tenant users: the tenant's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Tenant users: the session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Tenant users: the application acting for the user (`null` for direct sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Tenant users: permissions at issue time (informational: the server re-derives
    /// them from current grants on every request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perms: Option<Vec<String>>,
}

/// The tenant-specific claims of a user's token.
#[derive(Debug, Clone, Default)]
pub struct TenantClaims {
    /// Tenant id.
    pub tid: String,
    /// Tenant slug.
    pub tenant: String,
    /// Session id.
    pub sid: String,
    /// Permissions.
    pub perms: Vec<String>,
    /// The application acting for the user, for a delegated token.
    pub app: Option<String>,
}

/// A token handed to a client.
#[derive(Clone, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The public half of a signing key, as a JWK (RFC 8037).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicJwk {
    /// `OKP`.
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// Key id.
    pub kid: String,
    /// `EdDSA`.
    pub alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// Whether claims are past their expiry (with the leeway) at `now`.
fn expired(now: i64, c: &Claims) -> bool {
    now > c.exp.saturating_add(LEEWAY_SECS)
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Jwks {
    /// Every key whose tokens may still be presented.
    pub keys: Vec<PublicJwk>,
}

/// Tokens remembered as verified, at most (about 2 MB of claims). Enough for every
/// session active at once on a large node; past it, expired entries are dropped, and
/// if that frees too little the memory starts again empty.
const MAX_REMEMBERED_TOKENS: usize = 8192;

/// A token whose signature was verified: by which key, and what it says.
struct Verified {
    kid: String,
    claims: Claims,
}

/// Signs and verifies tokens with the deployment's signing keys.
pub struct TokenService {
    issuer: String,
    active: SigningKey,
    /// Behind a lock so that a revocation can take keys out even when a full reload
    /// (which needs the root provider) fails: revocation never fails open.
    verifying: std::sync::RwLock<HashMap<String, Vec<u8>>>,
    /// Tokens already verified, by SHA-256 of the token: every request of a session
    /// presents the same access token, and an Ed25519 verification was an eighth of a
    /// read's CPU time. Whether a signature is valid under a key never changes, so what
    /// is remembered is only that; the key must still be in `verifying` (a revoked key
    /// stops its tokens at once, remembered or not), and audience and times are
    /// checked on every use. The digest must stay a cryptographic hash: a collision
    /// would let a forged token borrow a verified token's claims. A key id is the
    /// thumbprint of its key (`SigningKey::from_pkcs8`), and `verifying` only ever
    /// loses keys (a reload builds a new service), so the kid names the very key that
    /// verified. Lock order: `verifying`, then `verified`.
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
    clock: SharedClock,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("active", &self.active.kid)
            .finish()
    }
}

impl TokenService {
    /// A service signing with `active` and also accepting tokens of `older` keys
    /// (rotation overlap).
    pub fn new(
        issuer: String,
        active: SigningKey,
        older: Vec<SigningKey>,
        clock: SharedClock,
    ) -> Self {
        let verifying = std::iter::once(&active)
            .chain(older.iter())
            .map(|k| (k.kid.clone(), k.public_key()))
            .collect();
        Self {
            issuer,
            active,
            verifying: std::sync::RwLock::new(verifying),
            verified: std::sync::Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Stops accepting tokens of every key not in `live` (revoked or deleted).
    pub fn keep_only(&self, live: &std::collections::HashSet<String>) {
        self.verifying
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|kid, _| live.contains(kid));
    }

    /// The key id of the key that signs.
    pub fn active_kid(&self) -> &str {
        self.active.kid()
    }

    /// Signs a token for `subject` with audience `aud`, valid for `ttl_secs`.
    pub fn issue(&self, aud: &str, subject: &str, ttl_secs: u64) -> IssuedToken {
        self.issue_with(aud, subject, ttl_secs, None)
    }

    /// Signs a token for a tenant subject — `user:<id>` or `app:<id>` — (audience
    /// [`TENANT_AUDIENCE`]); an empty `sid` is left out (applications have no session).
    pub fn issue_for_tenant(
        &self,
        subject: &str,
        ttl_secs: u64,
        tenant: TenantClaims,
    ) -> IssuedToken {
        self.issue_with(TENANT_AUDIENCE, subject, ttl_secs, Some(tenant))
    }

    fn issue_with(
        &self,
        aud: &str,
        subject: &str,
        ttl_secs: u64,
        tenant: Option<TenantClaims>,
    ) -> IssuedToken {
        let now = self.clock.now().unix_timestamp();
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX).min(86_400);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: aud.to_owned(),
            sub: subject.to_owned(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
            tid: tenant.as_ref().map(|t| t.tid.clone()),
            tenant: tenant.as_ref().map(|t| t.tenant.clone()),
            sid: tenant
                .as_ref()
                .map(|t| t.sid.clone())
                .filter(|s| !s.is_empty()),
            app: tenant.as_ref().and_then(|t| t.app.clone()),
            perms: tenant.map(|t| t.perms),
        };
        IssuedToken {
            access_token: self.sign(&claims),
            token_type: "Bearer",
            expires_in: ttl.unsigned_abs(),
        }
    }

    fn sign(&self, claims: &Claims) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.active.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let sig = self.active.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// Verifies a token's signature, issuer, audience and validity period.
    pub fn verify(&self, token: &str, aud: &str) -> Result<Claims, TokenError> {
        self.verify_any(token, &[aud])
    }

    /// Verifies a token whose audience is any of `auds`; the caller branches on
    /// `claims.aud`.
    pub fn verify_any(&self, token: &str, auds: &[&str]) -> Result<Claims, TokenError> {
        if token.len() > 8 * 1024 {
            return Err(TokenError::Malformed);
        }
        let digest: [u8; 32] = {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        };
        if let Some(claims) = self.remembered(&digest) {
            // The issuer was checked when it was remembered, and is this service's.
            if !auds.contains(&claims.aud.as_str()) {
                return Err(TokenError::WrongAudience);
            }
            self.check_times(&claims)?;
            return Ok(claims);
        }
        let (kid, claims) = self.verify_signed(token, auds)?;
        self.remember(digest, kid, &claims);
        Ok(claims)
    }

    /// The claims of a token verified before, if the key that verified it is still
    /// trusted.
    fn remembered(&self, digest: &[u8; 32]) -> Option<Claims> {
        let keys = self
            .verifying
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut cache = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = cache.get(digest)?;
        if keys.contains_key(&v.kid) {
            Some(v.claims.clone())
        } else {
            cache.remove(digest);
            None
        }
    }

    /// Remembers a token that just verified under `kid`. When the memory is full,
    /// expired tokens go first; if that frees less than a quarter of it, all of it goes
    /// (freed outside the lock), so a full memory is not scanned on every miss.
    fn remember(&self, digest: [u8; 32], kid: String, claims: &Claims) {
        let now = self.clock.now().unix_timestamp();
        let mut cache = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut old = None;
        if cache.len() >= MAX_REMEMBERED_TOKENS {
            cache.retain(|_, v| !expired(now, &v.claims));
            if cache.len() > MAX_REMEMBERED_TOKENS - MAX_REMEMBERED_TOKENS / 4 {
                old = Some(std::mem::take(&mut *cache));
            }
        }
        cache.insert(
            digest,
            Verified {
                kid,
                claims: claims.clone(),
            },
        );
        drop(cache);
        drop(old);
    }

    /// Remembered verified tokens (tests).
    #[cfg(test)]
    fn remembered_len(&self) -> usize {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The full check: header, key, signature, issuer, audience, times. Returns the
    /// id of the key that verified it with the claims.
    fn verify_signed(&self, token: &str, auds: &[&str]) -> Result<(String, Claims), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::UnknownKey);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let public = self
            .verifying
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&kid)
            .cloned()
            .ok_or(TokenError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.validate_exp = false; // checked below against the injected clock
        v.validate_nbf = false;
        v.set_audience(auds);
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_ed_der(&public), &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => TokenError::BadSignature,
                    K::InvalidAudience | K::InvalidIssuer => TokenError::WrongAudience,
                    K::InvalidAlgorithm => TokenError::UnknownKey,
                    _ => TokenError::Malformed,
                }
            })?;
        self.check_times(&data.claims)?;
        Ok((kid, data.claims))
    }

    fn check_times(&self, c: &Claims) -> Result<(), TokenError> {
        let now = self.clock.now().unix_timestamp();
        if expired(now, c) {
            return Err(TokenError::Expired);
        }
        if now < c.nbf.saturating_sub(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .verifying
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(kid, x)| PublicJwk {
                kty: "OKP",
                crv: "Ed25519",
                x: URL_SAFE_NO_PAD.encode(x),
                kid: kid.clone(),
                alg: "EdDSA",
                use_: "sig",
            })
            .collect();
        Jwks { keys }
    }
}

#[cfg(test)]
mod tests;
