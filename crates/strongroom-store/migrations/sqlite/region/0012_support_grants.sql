-- Support access: a tenant's administrator lets one platform operator into the tenant,
-- for one scope, with a reason, until an expiry at most 72 hours away. Without a live
-- grant an operator sees the tenant as if it did not exist. Grants are never deleted:
-- revoking and expiring are recorded (and audited in the tenant's trail).
CREATE TABLE support_grants (
    tenant_id        TEXT    NOT NULL REFERENCES tenant_homes (tenant_id),
    id               TEXT    NOT NULL,
    operator_id      TEXT    NOT NULL,
    scope            TEXT    NOT NULL CHECK (scope IN ('audit:read')),
    personal_data    INTEGER NOT NULL CHECK (personal_data IN (0, 1)),
    reason           TEXT    NOT NULL,
    granted_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    expiry_recorded  INTEGER NOT NULL DEFAULT 0 CHECK (expiry_recorded IN (0, 1)),
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE INDEX support_grants_by_operator ON support_grants (tenant_id, operator_id, expires_at);
