//! The audit trail on the platform facade: checkpoints, verifier keys, tiles, proofs,
//! queries and exports (each audited), erasure of a subject's personal data, and the
//! background integrator's round.

use super::{Platform, PlatformError};
use crate::access::rbac::Permission;
use crate::access::{self, PlatformAction, Principal, TenantScope};
use crate::audit::entry::{Action, NewEntry, Target, validate_reason};
use crate::audit::log::Proof;
use crate::audit::personal::Opened;
use crate::audit::review::{self, MAX_FILTER, ReviewEntry, ReviewPersonal};
use crate::store::{AuditFilter, PendingWork, SupportScope};
use crate::tenant::Slug;

impl Platform {
    /// The scope for reading `slug`'s trail: a user with `audit:read`, or (until
    /// support-access grants exist) an operator.
    async fn audit_scope(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<TenantScope, PlatformError> {
        Ok(self.audit_reader(principal, slug, "audit.read").await?.0)
    }

    /// The scope for reading `slug`'s trail, and whether the reader may see the
    /// personal data in it: a user or application with `audit:read`, the local
    /// administrator, or an operator holding a live support grant (each use audited as
    /// `used_for`; personal data only if the grant says so).
    async fn audit_reader(
        &self,
        principal: &Principal,
        slug: &Slug,
        used_for: &str,
    ) -> Result<(TenantScope, bool), PlatformError> {
        if matches!(principal, Principal::Operator(_)) {
            let (_, scope, grant) = self
                .support_scope(principal, slug, SupportScope::AuditRead, used_for)
                .await?;
            return Ok((scope, grant.personal_data));
        }
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::AuditRead, None)
            .await?;
        Ok((scope, true))
    }

    /// Integrates the tenant's new audit entries and returns the latest signed
    /// checkpoint (C2SP tlog-checkpoint as a signed note).
    pub async fn audit_checkpoint(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<String, PlatformError> {
        let scope = self.audit_scope(principal, slug).await?;
        Ok(self.audit.checkpoint(&scope, slug.as_str()).await?.1)
    }

    /// The tenant's audit verifier key (C2SP vkey).
    pub async fn audit_vkey(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<String, PlatformError> {
        let scope = self.audit_scope(principal, slug).await?;
        Ok(self.audit.vkey(&scope, slug.as_str()).await?)
    }

    /// A tile or entry bundle of the tenant's audit log (`tile/...`, C2SP tlog-tiles).
    pub async fn audit_tile(
        &self,
        principal: &Principal,
        slug: &Slug,
        path: &str,
    ) -> Result<Vec<u8>, PlatformError> {
        let scope = self.audit_scope(principal, slug).await?;
        Ok(self.audit.tile(&scope, slug.as_str(), path).await?)
    }
}

/// One page of an audit-trail query.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Matching entries, oldest first.
    pub entries: Vec<ReviewEntry>,
    /// Cursor for the next page (`cursor=` on the next request); absent on the last.
    pub next: Option<String>,
}

/// How far integration has got: entries appended vs. covered by the signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AuditStatus {
    /// Entries in the log.
    pub entries: u64,
    /// Entries covered by the latest signed checkpoint.
    pub integrated: u64,
}

/// What a client that finds every export slot taken is told to wait.
const EXPORT_RETRY_SECS: u64 = 5;

/// An export under way: where it has got to, and its slot among the concurrent
/// exports (released when this is dropped, e.g. when the client goes away).
pub struct AuditExport {
    scope: TenantScope,
    filter: AuditFilter,
    personal: bool,
    format: ExportFormat,
    from: u64,
    left: u32,
    started: bool,
    done: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _tenant_slot: TenantExportSlot,
}

/// Exports running per tenant.
pub(super) type ExportsByTenant =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<crate::tenant::TenantId, usize>>>;

/// A tenant's export slot (at most [`EXPORTS_PER_TENANT`] at once), freed on drop.
struct TenantExportSlot {
    running: ExportsByTenant,
    tenant: crate::tenant::TenantId,
}

/// Exports of one tenant streaming at once.
const EXPORTS_PER_TENANT: usize = 1;

impl TenantExportSlot {
    fn claim(running: &ExportsByTenant, tenant: crate::tenant::TenantId) -> Option<Self> {
        let mut map = running.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(tenant).or_insert(0);
        if *n >= EXPORTS_PER_TENANT {
            return None;
        }
        *n += 1;
        Some(Self {
            running: running.clone(),
            tenant,
        })
    }
}

impl Drop for TenantExportSlot {
    fn drop(&mut self) {
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
    }
}

impl std::fmt::Debug for AuditExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditExport")
            .field("tenant", &self.scope.tenant())
            .field("format", &self.format)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Output of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `application/json`: an array of entries.
    Json,
    /// `text/csv`: [`crate::audit::review::CSV_COLUMNS`].
    Csv,
}

fn check_filter(filter: &AuditFilter) -> Result<(), PlatformError> {
    for (field, value) in [("actor", &filter.actor), ("target", &filter.target)] {
        if let Some(v) = value
            && (v.chars().count() > MAX_FILTER
                || v.chars().any(char::is_control)
                || !v.contains(':'))
        {
            return Err(PlatformError::Invalid {
                field: Some(field),
                message: format!("expected `<kind>:<id>`, at most {MAX_FILTER} characters"),
            });
        }
    }
    if let Some(a) = &filter.action
        && Action::parse(a).is_none()
    {
        return Err(PlatformError::Invalid {
            field: Some("action"),
            message: "not an action of the catalogue (docs/formats/audit.md)".into(),
        });
    }
    if let (Some(s), Some(u)) = (filter.since, filter.until)
        && s > u
    {
        return Err(PlatformError::Invalid {
            field: Some("until"),
            message: "`until` is before `since`".into(),
        });
    }
    Ok(())
}

/// The name the platform trail goes by where a tenant's slug would (its origin is
/// `<issuer host>/platform/audit`).
pub const PLATFORM_TRAIL: &str = "platform";

/// A query cursor: a position in the log, which storage counts in i64.
fn parse_cursor(cursor: Option<&str>) -> Result<u64, PlatformError> {
    let Some(c) = cursor else { return Ok(0) };
    c.parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or(PlatformError::Invalid {
            field: Some("cursor"),
            message: "not a cursor returned by this endpoint".into(),
        })
}

/// The filter, as recorded in the audit entry of the query that used it.
fn describe(filter: &AuditFilter) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    for (k, v) in [("since", filter.since), ("until", filter.until)] {
        if let Some(t) = v {
            parts.push(format!("{k}={}", crate::audit::entry::format_time(t)));
        }
    }
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join("&")
    }
}

impl Platform {
    /// The inclusion proof of entry `index` in the tree of `size` entries (default:
    /// the latest checkpoint).
    pub async fn audit_inclusion(
        &self,
        principal: &Principal,
        slug: &Slug,
        index: u64,
        size: Option<u64>,
    ) -> Result<Proof, PlatformError> {
        let scope = self.audit_scope(principal, slug).await?;
        Ok(self
            .audit
            .inclusion(&scope, slug.as_str(), index, size)
            .await?)
    }

    /// The consistency proof between two tree sizes (`to` defaults to the latest
    /// checkpoint).
    pub async fn audit_consistency(
        &self,
        principal: &Principal,
        slug: &Slug,
        from: u64,
        to: Option<u64>,
    ) -> Result<Proof, PlatformError> {
        let scope = self.audit_scope(principal, slug).await?;
        Ok(self
            .audit
            .consistency(&scope, slug.as_str(), from, to)
            .await?)
    }

    /// Records that the trail was read (`audit.query` / `audit.export`), before any
    /// entry is returned: a read that cannot be audited does not happen.
    async fn audit_read(
        &self,
        scope: &TenantScope,
        action: Action,
        filter: &AuditFilter,
    ) -> Result<(), PlatformError> {
        let target = Target::of("audit-trail", describe(filter));
        let entry = NewEntry::by(scope, action, target, None);
        self.recorder.record(scope, entry).await?;
        Ok(())
    }

    /// Decodes stored entries and opens their personal data.
    async fn review(
        &self,
        scope: &TenantScope,
        stored: &[crate::store::StoredEntry],
        personal: bool,
    ) -> Result<Vec<ReviewEntry>, PlatformError> {
        let mut entries = Vec::with_capacity(stored.len());
        let mut sealed = Vec::with_capacity(stored.len());
        for s in stored {
            let (e, p) = review::decode(s).map_err(|e| {
                PlatformError::internal(format!("audit entry {} does not decode: {e}", s.seq))
            })?;
            entries.push(e);
            sealed.push(p);
        }
        if !personal {
            for (e, p) in entries.iter_mut().zip(&sealed) {
                e.personal = p.as_ref().map(|_| ReviewPersonal {
                    ip: None,
                    user_agent: None,
                    erased: false,
                    withheld: true,
                });
            }
            return Ok(entries);
        }
        let opened = self.recorder.personal().open_all(scope, &sealed).await?;
        for (e, o) in entries.iter_mut().zip(opened) {
            e.personal = o.map(|o| match o {
                Opened::Data(origin) => ReviewPersonal {
                    ip: origin.ip.map(|ip| ip.to_string()),
                    user_agent: origin.user_agent,
                    erased: false,
                    withheld: false,
                },
                Opened::Erased => ReviewPersonal {
                    ip: None,
                    user_agent: None,
                    erased: true,
                    withheld: false,
                },
            });
        }
        Ok(entries)
    }

    /// One page of entries matching `filter`, from `cursor` on. The query itself is
    /// audited first.
    pub async fn audit_query(
        &self,
        principal: &Principal,
        slug: &Slug,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AuditPage, PlatformError> {
        check_filter(filter)?;
        let from = parse_cursor(cursor)?;
        let (scope, personal) = self.audit_reader(principal, slug, "audit.query").await?;
        self.query_page(&scope, personal, filter, from, limit).await
    }

    /// One page of `scope`'s trail from `from`, the query itself audited first.
    async fn query_page(
        &self,
        scope: &TenantScope,
        personal: bool,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<AuditPage, PlatformError> {
        let limit = limit.clamp(1, self.audit_limits.max_page);
        self.audit_read(scope, Action::AuditQuery, filter).await?;
        let stored = self
            .store
            .audit_query(scope, filter, from, limit.saturating_add(1))
            .await?;
        let more = stored.len() > limit as usize;
        let page = &stored[..stored.len().min(limit as usize)];
        let next = if more {
            page.last().map(|e| (e.seq + 1).to_string())
        } else {
            None
        };
        Ok(AuditPage {
            entries: self.review(scope, page, personal).await?,
            next,
        })
    }

    /// The platform's own trail, for operators and the local administrator.
    fn platform_trail(&self, principal: &Principal) -> Result<TenantScope, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ReadPlatformAudit)?;
        Ok(access::platform_log(&scope))
    }

    /// The platform trail's latest signed checkpoint (integrating new entries first).
    pub async fn platform_audit_checkpoint(
        &self,
        principal: &Principal,
    ) -> Result<String, PlatformError> {
        let scope = self.platform_trail(principal)?;
        Ok(self.audit.checkpoint(&scope, PLATFORM_TRAIL).await?.1)
    }

    /// The platform trail's verifier key (C2SP vkey).
    pub async fn platform_audit_vkey(
        &self,
        principal: &Principal,
    ) -> Result<String, PlatformError> {
        let scope = self.platform_trail(principal)?;
        Ok(self.audit.vkey(&scope, PLATFORM_TRAIL).await?)
    }

    /// A tile or entry bundle of the platform trail (`tile/...`, C2SP tlog-tiles).
    pub async fn platform_audit_tile(
        &self,
        principal: &Principal,
        path: &str,
    ) -> Result<Vec<u8>, PlatformError> {
        let scope = self.platform_trail(principal)?;
        Ok(self.audit.tile(&scope, PLATFORM_TRAIL, path).await?)
    }

    /// One page of the platform trail matching `filter` (the query itself recorded).
    pub async fn platform_audit_query(
        &self,
        principal: &Principal,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AuditPage, PlatformError> {
        check_filter(filter)?;
        let from = parse_cursor(cursor)?;
        let scope = self.platform_trail(principal)?;
        self.query_page(&scope, true, filter, from, limit).await
    }

    /// Starts an export of every entry matching `filter` (at most `audit.max_export`),
    /// rendered for a review and produced page by page with
    /// [`Platform::audit_export_next`], so memory stays at one page whatever its size.
    /// The export itself is audited first. At most `audit.max_concurrent_exports` run
    /// at once; the slot is held until the export is dropped.
    pub async fn audit_export(
        &self,
        principal: &Principal,
        slug: &Slug,
        filter: &AuditFilter,
        format: ExportFormat,
    ) -> Result<AuditExport, PlatformError> {
        check_filter(filter)?;
        let (scope, personal) = self.audit_reader(principal, slug, "audit.export").await?;
        let busy = || PlatformError::AtCapacity {
            what: "audit exports",
            retry_after_secs: EXPORT_RETRY_SECS,
        };
        // One tenant cannot take every slot: one export per tenant at a time.
        let tenant_slot =
            TenantExportSlot::claim(&self.exports_by_tenant, scope.tenant()).ok_or_else(busy)?;
        let slot = self
            .export_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        self.audit_read(&scope, Action::AuditExport, filter).await?;
        Ok(AuditExport {
            scope,
            filter: filter.clone(),
            personal,
            format,
            from: 0,
            left: self.audit_limits.max_export,
            started: false,
            done: false,
            _slot: slot,
            _tenant_slot: tenant_slot,
        })
    }

    /// The next piece of an export's document (JSON array or CSV), `None` once it is
    /// complete. The first piece opens the document even when nothing matches.
    pub async fn audit_export_next(
        &self,
        export: &mut AuditExport,
    ) -> Result<Option<Vec<u8>>, PlatformError> {
        if export.done {
            return Ok(None);
        }
        let want = export.left.min(self.audit_limits.max_page.max(1));
        let stored = if want == 0 {
            Vec::new()
        } else {
            self.store
                .audit_query(&export.scope, &export.filter, export.from, want)
                .await?
        };
        if let Some(last) = stored.last() {
            export.from = last.seq + 1;
        }
        export.left -= u32::try_from(stored.len()).unwrap_or(export.left);
        let last = stored.len() < want as usize || export.left == 0;
        if last && stored.len() == want as usize {
            // The bound was reached: an export that silently stopped there would look
            // complete. More matching entries fail it instead.
            let more = self
                .store
                .audit_query(&export.scope, &export.filter, export.from, 1)
                .await?;
            if !more.is_empty() {
                export.done = true;
                return Err(PlatformError::Invalid {
                    field: Some("since"),
                    message: format!(
                        "more than {} entries match (audit.max_export): narrow the filter, e.g. with since/until",
                        self.audit_limits.max_export
                    ),
                });
            }
        }
        let entries = self.review(&export.scope, &stored, export.personal).await?;
        let mut out = String::new();
        match export.format {
            ExportFormat::Json => {
                for (i, e) in entries.iter().enumerate() {
                    out.push(if i == 0 && !export.started { '[' } else { ',' });
                    out.push_str(&serde_json::to_string(e).map_err(PlatformError::internal_from)?);
                }
                if !export.started && entries.is_empty() {
                    out.push('[');
                }
                if last {
                    out.push(']');
                }
            }
            ExportFormat::Csv => {
                if !export.started {
                    out = review::csv_header();
                }
                review::csv_rows(&mut out, &entries);
            }
        }
        export.started = true;
        export.done = last;
        Ok(Some(out.into_bytes()))
    }

    /// Destroys a subject's personal-data keys in a tenant's trail (erasure): their IP
    /// addresses and user agents become unreadable; every entry and proof is unchanged.
    pub async fn audit_erase_subject(
        &self,
        principal: &Principal,
        slug: &Slug,
        subject: &str,
        reason: String,
    ) -> Result<u64, PlatformError> {
        validate_reason(Action::SubjectErase, Some(&reason))?;
        if subject.chars().count() > MAX_FILTER || !subject.contains(':') {
            return Err(PlatformError::Invalid {
                field: Some("subject"),
                message: "expected `<kind>:<id>`, e.g. operator:<uuid>".into(),
            });
        }
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ManageKeys)
            .await?;
        let scope = scope.writable()?;
        let target = Target::of("audit-subject", subject);
        let entry = NewEntry::by(&scope, Action::SubjectErase, target, Some(reason));
        let event = self.recorder.event(&scope, entry).await?;
        let erased = self
            .store
            .erase_audit_subject(&scope, subject, &event)
            .await?;
        tracing::warn!(tenant = %slug, erased, "audit subject keys destroyed (erasure)");
        Ok(erased)
    }

    /// Entries appended and entries signed, without integrating anything: how far
    /// the published checkpoint lags (for monitoring and benchmarks).
    pub async fn audit_status(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<AuditStatus, PlatformError> {
        let scope = self.audit_scope(principal, slug).await?;
        let entries = self.store.audit_len(&scope).await?;
        let integrated = self.store.audit_log(&scope).await?.map_or(0, |l| l.size);
        Ok(AuditStatus {
            entries,
            integrated,
        })
    }

    /// Whether this server node is the one that runs the background integrator now:
    /// with several nodes on one database, one signs checkpoints at a time (a leader
    /// lock in the database); the others take over when it goes.
    pub async fn leads_background_work(&self) -> Result<bool, PlatformError> {
        Ok(self.store.lead_background_work().await?)
    }

    /// One round of the background integrator: folds every tenant's new entries into
    /// its tree and signs a checkpoint. Returns the entries integrated.
    pub async fn integrate_audit_round(&self) -> Result<u64, PlatformError> {
        let scope = access::authorize_platform(&access::system(), PlatformAction::ReadAudit)?;
        let mut total = 0;
        for t in self.tenants_with(&scope, PendingWork::Audit).await? {
            let home = access::provisioning_scope(&scope, &t);
            match self.audit.integrate_to(&home, t.slug.as_str()).await {
                Ok((n, size)) => {
                    total += n;
                    self.work_done(&home, PendingWork::Audit, size).await;
                }
                Err(e) => {
                    tracing::warn!(tenant = %t.slug, error = %super::chain(&e), "audit integration failed; will retry");
                }
            }
        }
        let log = access::platform_log(&scope);
        match self.audit.integrate(&log, PLATFORM_TRAIL).await {
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(error = %super::chain(&e), "platform audit integration failed; will retry")
            }
        }
        // Expired support grants are recorded in the same round (and integrated in
        // the next).
        if let Err(e) = self.support_expiry_round().await {
            tracing::warn!(error = %super::chain(&e), "recording support-grant expiries failed; will retry");
        }
        Ok(total)
    }
}
