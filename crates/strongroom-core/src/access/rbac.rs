//! Permissions and roles: what a tenant user may do.
//!
//! Permissions are a fixed catalogue named `<area>:<verb>`; roles are named sets of
//! them. Built-in roles cover the usual regulated-records team (admin, preparer,
//! reviewer, viewer, auditor); a user's permissions are the union of their granted
//! roles' permissions, computed from the grants on every request so that removing a
//! role takes effect immediately.

use std::collections::BTreeSet;

/// One thing a user may do inside their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read records.
    RecordsRead,
    /// Create and edit records.
    RecordsWrite,
    /// Sign records with a reviewing meaning.
    RecordsReview,
    /// Approve and sign records.
    RecordsApprove,
    /// Define and change record types (schema, signature policy, searchable fields).
    RecordsAdmin,
    /// Read the audit trail.
    AuditRead,
    /// Create, change and disable users and their role grants.
    UsersManage,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 7] = [
        Self::RecordsRead,
        Self::RecordsWrite,
        Self::RecordsReview,
        Self::RecordsApprove,
        Self::RecordsAdmin,
        Self::AuditRead,
        Self::UsersManage,
    ];

    /// The stable name, e.g. `records:read` (as carried in access tokens).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordsRead => "records:read",
            Self::RecordsWrite => "records:write",
            Self::RecordsReview => "records:review",
            Self::RecordsApprove => "records:approve",
            Self::RecordsAdmin => "records:admin",
            Self::AuditRead => "audit:read",
            Self::UsersManage => "users:manage",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A built-in role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything inside the tenant.
    Admin,
    /// Writes records.
    Preparer,
    /// Reviews and approves records (signs with reviewing and approving meanings).
    Reviewer,
    /// Reads records.
    Viewer,
    /// Reads records and the audit trail.
    Auditor,
}

impl Role {
    /// Every built-in role.
    pub const ALL: [Role; 5] = [
        Self::Admin,
        Self::Preparer,
        Self::Reviewer,
        Self::Viewer,
        Self::Auditor,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Preparer => "preparer",
            Self::Reviewer => "reviewer",
            Self::Viewer => "viewer",
            Self::Auditor => "auditor",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role's permissions.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission as P;
        match self {
            Self::Admin => &Permission::ALL,
            Self::Preparer => &[P::RecordsRead, P::RecordsWrite],
            Self::Reviewer => &[P::RecordsRead, P::RecordsReview, P::RecordsApprove],
            Self::Viewer => &[P::RecordsRead],
            Self::Auditor => &[P::RecordsRead, P::AuditRead],
        }
    }
}

/// The union of `roles`' permissions.
pub fn permissions_of(roles: &[Role]) -> BTreeSet<Permission> {
    roles
        .iter()
        .flat_map(|r| r.permissions().iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_roles_are_least_privilege() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        let viewer = permissions_of(&[Role::Viewer]);
        assert_eq!(viewer.len(), 1);
        assert!(
            !permissions_of(&[Role::Preparer, Role::Reviewer]).contains(&Permission::AuditRead)
        );
        assert!(!permissions_of(&[Role::Auditor]).contains(&Permission::RecordsWrite));
        assert_eq!(permissions_of(&[Role::Admin]).len(), Permission::ALL.len());
    }
}
