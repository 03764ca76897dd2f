-- Region database: the data of the tenants resident in one region, and nothing else.
-- Every table holding tenant data has a tenant_id column, and every query the adapter
-- runs against it binds tenant_id from the caller's TenantScope.
--
-- PostgreSQL translation of migrations/sqlite/region/: INTEGER is BIGINT (0/1 flags
-- too, with their CHECK), BLOB is BYTEA, TEXT compares byte by byte (COLLATE "C"), as
-- SQLite's default BINARY collation does, whatever the database's locale.
--
-- On PostgreSQL the binding is also enforced by the database: every table with a
-- tenant_id has row-level security, enabled and forced (so it binds the table owner
-- too), with one policy that admits only the rows of the tenant named by the
-- transaction-local setting app.tenant_id, which the adapter sets first in every
-- transaction. With no setting, no row is visible and none can be written.

CREATE TABLE tenant_homes (
    tenant_id   TEXT    COLLATE "C" PRIMARY KEY,
    slug        TEXT    COLLATE "C" NOT NULL,
    created_at  BIGINT  NOT NULL
);
ALTER TABLE tenant_homes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_homes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_homes
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
