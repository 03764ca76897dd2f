//! What a ciphertext is bound to: its tenant, the kind and id of the object, and the
//! object's version. The binding is the AEAD's associated data, so a ciphertext copied to
//! another row, tenant or version fails to open.

use crate::tenant::TenantId;

/// The identity of a sealed object.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    /// Owning tenant.
    pub tenant: TenantId,
    /// Kind of object, e.g. `tenant-secret`, `blob`. At most 255 bytes.
    pub kind: &'a str,
    /// Object id within its kind. At most 65 535 bytes.
    pub id: &'a str,
    /// Object version (1 for unversioned objects).
    pub version: u64,
}

impl ObjectRef<'_> {
    /// The associated data: `domain || tenant (16 bytes) || u16 len || kind || u16 len ||
    /// id || version (u64 BE) || header`. Lengths are big-endian; over-long kinds or ids
    /// are truncated by the caller's types long before these limits.
    pub(crate) fn aad(&self, domain: &[u8], header: &[u8]) -> Vec<u8> {
        let kind = &self.kind.as_bytes()[..self.kind.len().min(usize::from(u16::MAX))];
        let id = &self.id.as_bytes()[..self.id.len().min(usize::from(u16::MAX))];
        let mut aad =
            Vec::with_capacity(domain.len() + 16 + 4 + kind.len() + id.len() + 8 + header.len());
        aad.extend_from_slice(domain);
        aad.extend_from_slice(self.tenant.as_uuid().as_bytes());
        aad.extend_from_slice(&u16::try_from(kind.len()).unwrap_or(u16::MAX).to_be_bytes());
        aad.extend_from_slice(kind);
        aad.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
        aad.extend_from_slice(id);
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad.extend_from_slice(header);
        aad
    }
}
