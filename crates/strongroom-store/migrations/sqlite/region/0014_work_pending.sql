-- Tenants with background work pending, so that the background rounds (audit
-- integration, re-encryption) visit those tenants and not every tenant every round:
-- a deployment of 10,000 mostly idle tenants then costs one indexed read per round,
-- not two per tenant.
--
-- kind 'audit': the tenant's log has entries a checkpoint does not cover yet; `mark`
-- is the log's length after the last append (set in the append's transaction), and
-- the integrator clears the row only once its tree reaches that length.
-- kind 'reencrypt': objects may still be sealed under an older data key; `mark` is the
-- newest data-key version (set with the key), cleared once a re-encryption step
-- against that version found nothing left to move.
-- Marks are hints: a spurious one costs one visit, and a missing one cannot happen
-- because each is written in the same transaction as the work it announces.
CREATE TABLE work_pending (
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('audit', 'reencrypt')),
    mark INTEGER NOT NULL CHECK (mark >= 0),
    PRIMARY KEY (kind, tenant_id)
) WITHOUT ROWID;

-- Support grants whose expiry is still to be recorded, found by time without
-- visiting every tenant.
CREATE INDEX support_grants_unrecorded ON support_grants (expires_at)
    WHERE revoked_at IS NULL AND expiry_recorded = 0;

-- Every tenant that exists now is visited once.
INSERT INTO work_pending (tenant_id, kind, mark) SELECT tenant_id, 'audit', 0 FROM tenant_homes;
INSERT INTO work_pending (tenant_id, kind, mark) SELECT tenant_id, 'reencrypt', 0 FROM tenant_homes;
