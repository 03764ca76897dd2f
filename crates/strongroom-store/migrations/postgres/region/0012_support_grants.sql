-- Support access: a tenant's administrator lets one platform operator into the tenant,
-- for one scope, with a reason, until an expiry at most 72 hours away. Without a live
-- grant an operator sees the tenant as if it did not exist. Grants are never deleted:
-- revoking and expiring are recorded (and audited in the tenant's trail).
CREATE TABLE support_grants (
    tenant_id        TEXT    COLLATE "C" NOT NULL REFERENCES tenant_homes (tenant_id),
    id               TEXT    COLLATE "C" NOT NULL,
    operator_id      TEXT    COLLATE "C" NOT NULL,
    scope            TEXT    COLLATE "C" NOT NULL CHECK (scope IN ('audit:read')),
    personal_data    BIGINT  NOT NULL CHECK (personal_data IN (0, 1)),
    reason           TEXT    COLLATE "C" NOT NULL,
    granted_by       TEXT    COLLATE "C" NOT NULL,
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    revoked_at       BIGINT,
    expiry_recorded  BIGINT  NOT NULL DEFAULT 0 CHECK (expiry_recorded IN (0, 1)),
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX support_grants_by_operator ON support_grants (tenant_id, operator_id, expires_at);
ALTER TABLE support_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE support_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON support_grants
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
