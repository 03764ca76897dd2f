//! Integrating a tenant's appended entries into its Merkle tree and signing checkpoints.
//!
//! Entries are appended by the writes they describe (in the same transaction); this
//! service later folds the new ones into the tlog-tiles hash tiles and signs a
//! checkpoint with the tenant's audit key. The leaf hashes are recomputed from the
//! stored entry bytes, never taken from storage on trust.
//!
//! The audit signing key is wrapped by the *root* key provider (context
//! `tenant-audit-key:<tenant uuid>`), not by the tenant's data keys: a crypto-shredded
//! tenant's audit trail must stay verifiable and extendable (its final `key.shred`
//! entry included) for as long as retention rules require.

use std::sync::Arc;

use super::merkle::{
    Hash, HashSource, ProofError, consistency_proof, inclusion_proof, leaf_hash, range_root,
};
use super::note::{Checkpoint, NoteError, NoteSigner};
use super::tiles::{TILE_WIDTH, TileRef, push_entry};
use super::tree::Tiles;
use crate::access::TenantScope;
use crate::keys::{KeyError, KeyProvider};
use crate::store::{AuditLogState, AuditStore, StoreError};

/// Entries integrated per storage round trip.
const BATCH: u32 = 4096;
/// Attempts when another integrator keeps winning.
const ATTEMPTS: usize = 8;

/// An audit-log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The root key provider failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Signing or a note failed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The stored tree is inconsistent with the entries.
    #[error(transparent)]
    Tree(#[from] ProofError),
    /// A tile or bundle that the latest checkpoint does not cover.
    #[error("no such tile")]
    NoSuchTile,
    /// Integration kept losing to concurrent integrators.
    #[error("the audit log is busy; retry")]
    Busy,
    /// The stored tree no longer hashes to the root of the last signed checkpoint:
    /// someone changed the tiles. Nothing more is signed for this log until an
    /// operator investigates.
    #[error(
        "the stored audit tree does not match the last signed checkpoint (size {size}); refusing to sign"
    )]
    Tampered {
        /// The size of the last signed checkpoint.
        size: u64,
    },
    /// A proof was asked for positions the log does not have.
    #[error("{field}: {message}")]
    OutOfRange {
        /// The request parameter at fault.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
}

/// A Merkle proof with the signed checkpoint it can be checked against.
#[derive(Debug, Clone)]
pub struct Proof {
    /// Tree size the proof is for.
    pub size: u64,
    /// The proof's hashes, in RFC 9162 order.
    pub hashes: Vec<Hash>,
    /// The latest signed checkpoint (its size is at least `size`).
    pub checkpoint: String,
    /// Size of the latest checkpoint.
    pub checkpoint_size: u64,
}

/// Records which tiles a proof computation reads, answering with dummy hashes. Proof
/// shape depends only on positions, never on hash values, so a dry run names exactly
/// the tiles the real run needs.
#[derive(Default)]
struct TileRecorder(std::cell::RefCell<std::collections::BTreeSet<(u8, u64)>>);

impl HashSource for TileRecorder {
    fn hash(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
        let start = index << u32::from(height % 8);
        self.0.borrow_mut().insert((height / 8, start / TILE_WIDTH));
        Ok([0; 32])
    }
}

/// The audit logs of all tenants.
pub struct AuditLogs {
    store: Arc<dyn AuditStore>,
    root: Arc<dyn KeyProvider>,
    host: String,
}

impl std::fmt::Debug for AuditLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLogs")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

fn key_context(scope: &TenantScope) -> Vec<u8> {
    format!("tenant-audit-key:{}", scope.tenant().as_uuid()).into_bytes()
}

impl AuditLogs {
    /// Audit logs whose origins start with `issuer` (scheme and odd characters dropped).
    pub fn new(store: Arc<dyn AuditStore>, root: Arc<dyn KeyProvider>, issuer: &str) -> Self {
        let host: String = issuer
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '+' && !c.is_control())
            .collect();
        Self {
            store,
            root,
            host: if host.is_empty() {
                "strongroom".into()
            } else {
                host
            },
        }
    }

    /// The log's origin line and key name: `<host>/t/<slug>/audit` for a tenant's
    /// trail, `<host>/platform/audit` for the platform's own.
    pub fn origin(&self, scope: &TenantScope, slug: &str) -> String {
        if scope.tenant() == crate::tenant::TenantId::PLATFORM {
            return format!("{}/platform/audit", self.host);
        }
        format!("{}/t/{slug}/audit", self.host)
    }

    /// The log's state, setting it up (with a fresh signing key) on first use.
    pub async fn state(
        &self,
        scope: &TenantScope,
        slug: &str,
    ) -> Result<AuditLogState, AuditError> {
        if let Some(s) = self.store.audit_log(scope).await? {
            return Ok(s);
        }
        let seed = NoteSigner::generate_seed()?;
        let signer = NoteSigner::from_seed(&self.origin(scope, slug), &seed)?;
        let state = AuditLogState {
            key_name: self.origin(scope, slug),
            public_key: signer.public_key(),
            wrapped_seed: self.root.wrap(&seed, &key_context(scope)).await?,
            size: 0,
            checkpoint: None,
        };
        self.store.init_audit_log(scope, &state).await?;
        // Another process may have won the race: read back whichever key is stored.
        self.store.audit_log(scope).await?.ok_or(AuditError::Busy)
    }

    async fn signer(
        &self,
        scope: &TenantScope,
        state: &AuditLogState,
    ) -> Result<NoteSigner, AuditError> {
        let seed = self
            .root
            .unwrap(&state.wrapped_seed, &key_context(scope))
            .await?;
        let signer = NoteSigner::from_seed(&state.key_name, &seed)?;
        if signer.public_key() != state.public_key {
            return Err(KeyError::Integrity.into());
        }
        Ok(signer)
    }

    /// The verifier key (C2SP vkey) of the tenant's log.
    pub async fn vkey(&self, scope: &TenantScope, slug: &str) -> Result<String, AuditError> {
        let state = self.state(scope, slug).await?;
        Ok(self.signer(scope, &state).await?.vkey())
    }

    /// Integrates every appended entry and returns the latest signed checkpoint.
    pub async fn checkpoint(
        &self,
        scope: &TenantScope,
        slug: &str,
    ) -> Result<(u64, String), AuditError> {
        for _ in 0..ATTEMPTS {
            let state = self.state(scope, slug).await?;
            let len = self.store.audit_len(scope).await?;
            if let (true, Some(cp)) = (len == state.size, &state.checkpoint) {
                return Ok((state.size, cp.clone()));
            }
            let mut view = Tiles::new();
            for (l, i, t) in self
                .store
                .audit_tiles(scope, &Tiles::needed_for_append(state.size))
                .await?
            {
                view.insert(l, i, t);
            }
            self.check_signed_prefix(scope, &state, &view).await?;
            let mut changed = std::collections::BTreeMap::new();
            let mut size = state.size;
            while size < len {
                let entries = self.store.audit_entries(scope, size, BATCH).await?;
                if entries.is_empty() {
                    break;
                }
                // Never sign over a gap: a row missing from storage is tampering, and
                // a checkpoint must not make the damaged log look whole.
                if entries.iter().zip(size..).any(|(e, want)| e.seq != want) {
                    return Err(
                        ProofError::Invalid("the stored log has a gap; refusing to sign").into(),
                    );
                }
                let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(&e.entry)).collect();
                for (l, i, t) in view.append(size, &leaves)? {
                    changed.insert((l, i), t);
                }
                size += leaves.len() as u64;
            }
            let root = range_root(&view, 0, size)?;
            let text = Checkpoint {
                origin: state.key_name.clone(),
                size,
                root,
                extensions: vec![],
            }
            .text();
            let note = self.signer(scope, &state).await?.sign(&text)?;
            let tiles: Vec<_> = changed.into_iter().map(|((l, i), t)| (l, i, t)).collect();
            if self
                .store
                .integrate_audit(scope, state.size, size, &tiles, &note)
                .await?
            {
                return Ok((size, note));
            }
        }
        Err(AuditError::Busy)
    }

    /// Before extending the tree, checks that the stored tiles still hash to the root
    /// the last checkpoint signed (verified with the log's own key): integration must
    /// never sign over a tree someone rewrote.
    async fn check_signed_prefix(
        &self,
        scope: &TenantScope,
        state: &AuditLogState,
        view: &Tiles,
    ) -> Result<(), AuditError> {
        let Some(note) = &state.checkpoint else {
            return Ok(());
        };
        let signer = self.signer(scope, state).await?;
        let verifier = crate::audit::note::Verifier::parse(&signer.vkey())?;
        let signed = Checkpoint::parse(verifier.open(note)?)?;
        let stored = range_root(view, 0, state.size).ok();
        if signed.size != state.size || stored != Some(signed.root) {
            tracing::error!(tenant = %scope.tenant(), size = state.size, "audit tiles do not match the signed checkpoint; signing stopped for this log");
            return Err(AuditError::Tampered { size: state.size });
        }
        Ok(())
    }

    /// Integrates new entries, if any, and returns how many were integrated: the
    /// background integrator's step.
    pub async fn integrate(&self, scope: &TenantScope, slug: &str) -> Result<u64, AuditError> {
        Ok(self.integrate_to(scope, slug).await?.0)
    }

    /// [`integrate`](Self::integrate), returning also the size of the tree the
    /// tenant's checkpoint now covers.
    pub async fn integrate_to(
        &self,
        scope: &TenantScope,
        slug: &str,
    ) -> Result<(u64, u64), AuditError> {
        let state = self.state(scope, slug).await?;
        let len = self.store.audit_len(scope).await?;
        if len == state.size && state.checkpoint.is_some() {
            return Ok((0, state.size));
        }
        let (size, _) = self.checkpoint(scope, slug).await?;
        Ok((size.saturating_sub(state.size), size))
    }

    /// Runs a proof computation over the stored tiles it needs.
    async fn prove(
        &self,
        scope: &TenantScope,
        run: impl Fn(&dyn HashSource) -> Result<Vec<Hash>, ProofError>,
    ) -> Result<Vec<Hash>, AuditError> {
        let recorder = TileRecorder::default();
        run(&recorder)?;
        let wanted: Vec<(u8, u64)> = recorder.0.into_inner().into_iter().collect();
        let mut tiles = Tiles::new();
        for (l, i, t) in self.store.audit_tiles(scope, &wanted).await? {
            tiles.insert(l, i, t);
        }
        Ok(run(&tiles)?)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries (default:
    /// the latest checkpoint's size).
    pub async fn inclusion(
        &self,
        scope: &TenantScope,
        slug: &str,
        index: u64,
        size: Option<u64>,
    ) -> Result<Proof, AuditError> {
        let (latest, checkpoint) = self.checkpoint(scope, slug).await?;
        let size = size.unwrap_or(latest);
        if size > latest {
            return Err(AuditError::OutOfRange {
                field: "size",
                message: "beyond the latest checkpoint",
            });
        }
        if index >= size {
            return Err(AuditError::OutOfRange {
                field: "index",
                message: "not in a tree of that size",
            });
        }
        let hashes = self
            .prove(scope, |src| inclusion_proof(src, index, size))
            .await?;
        Ok(Proof {
            size,
            hashes,
            checkpoint,
            checkpoint_size: latest,
        })
    }

    /// The consistency proof from the tree of `from` entries to the tree of `to`
    /// entries (default: the latest checkpoint's size).
    pub async fn consistency(
        &self,
        scope: &TenantScope,
        slug: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Proof, AuditError> {
        let (latest, checkpoint) = self.checkpoint(scope, slug).await?;
        let to = to.unwrap_or(latest);
        if to > latest {
            return Err(AuditError::OutOfRange {
                field: "to",
                message: "beyond the latest checkpoint",
            });
        }
        if from > to {
            return Err(AuditError::OutOfRange {
                field: "from",
                message: "greater than `to`",
            });
        }
        let hashes = self
            .prove(scope, |src| consistency_proof(src, from, to))
            .await?;
        Ok(Proof {
            size: to,
            hashes,
            checkpoint,
            checkpoint_size: latest,
        })
    }

    /// A tile or entry bundle at `path` (`tile/...`), within the latest checkpoint.
    pub async fn tile(
        &self,
        scope: &TenantScope,
        slug: &str,
        path: &str,
    ) -> Result<Vec<u8>, AuditError> {
        let tile = TileRef::parse(path).map_err(|_| AuditError::NoSuchTile)?;
        let (size, _) = self.checkpoint(scope, slug).await?;
        let width = u64::from(tile.width);
        let level = u32::from(tile.level.unwrap_or(0));
        // Hashes (or entries) at this level; levels beyond the tree's height have none.
        let available = size.checked_shr(8 * level).unwrap_or(0);
        if tile
            .index
            .checked_mul(TILE_WIDTH)
            .and_then(|s| s.checked_add(width))
            .is_none_or(|end| end > available)
        {
            return Err(AuditError::NoSuchTile);
        }
        let w = usize::from(tile.width);
        match tile.level {
            Some(l) => {
                let got = self.store.audit_tiles(scope, &[(l, tile.index)]).await?;
                let hashes = got
                    .into_iter()
                    .next()
                    .map(|(_, _, h)| h)
                    .ok_or(AuditError::NoSuchTile)?;
                Ok(hashes.get(..w).ok_or(AuditError::NoSuchTile)?.concat())
            }
            None => {
                let from = tile.index * TILE_WIDTH;
                // Served as stored: if rows went missing, the bundle is short and a
                // verifier names the first index that no longer lines up.
                let entries = self
                    .store
                    .audit_entries(scope, from, u32::from(tile.width))
                    .await?;
                let end = from + u64::from(tile.width);
                let mut bundle = Vec::new();
                for e in entries.iter().filter(|e| e.seq < end) {
                    push_entry(&mut bundle, &e.entry).map_err(|_| AuditError::NoSuchTile)?;
                }
                Ok(bundle)
            }
        }
    }
}
