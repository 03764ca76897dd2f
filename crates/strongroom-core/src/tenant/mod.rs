//! Tenants (workspaces): who they are, where their data lives, what state they are in.
//!
//! A tenant is created by a platform operator with a [`Slug`], a [`DisplayName`] and a
//! residency [`RegionName`]; each region declared in configuration maps to its own
//! storage location, and a tenant's data lives only there.

mod names;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use names::{DisplayName, RegionName, Slug, TenantId};

/// Why a tenant value or operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantError {
    /// The slug breaks the naming rules.
    #[error("invalid slug: {0}")]
    InvalidSlug(&'static str),
    /// The display name breaks the naming rules.
    #[error("invalid display name: {0}")]
    InvalidDisplayName(&'static str),
    /// The region name breaks the naming rules.
    #[error("invalid region name: {0}")]
    InvalidRegionName(&'static str),
    /// The region is well-formed but not declared in this deployment's configuration.
    #[error("unknown region `{0}`: it is not declared in this deployment's configuration")]
    UnknownRegion(String),
}

/// A tenant's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Contract ended: readable, not writable, awaiting purge.
    ContractEnded,
}

impl TenantStatus {
    /// The stable text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ContractEnded => "contract_ended",
        }
    }

    /// Parses the stored text; `None` for anything unknown (a corrupt row).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "contract_ended" => Some(Self::ContractEnded),
            _ => None,
        }
    }
}

/// A tenant as the platform directory knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Tenant {
    /// Stable internal id; never reused.
    pub id: TenantId,
    /// URL name, unique across the deployment.
    pub slug: Slug,
    /// Human name shown in the console.
    pub display_name: DisplayName,
    /// Residency region; decides which storage holds the tenant's data.
    pub region: RegionName,
    /// Lifecycle state.
    pub status: TenantStatus,
    /// When the tenant was created (UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// What it takes to create a tenant; every field already validated by its type.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// URL name.
    pub slug: Slug,
    /// Human name.
    pub display_name: DisplayName,
    /// Residency region (checked against configuration by the platform).
    pub region: RegionName,
    /// Key provider holding the tenant's key-encryption key (customer-owned key);
    /// `None` uses the root provider.
    pub key_provider: Option<String>,
}
