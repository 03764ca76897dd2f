-- Region database: the data of the tenants resident in one region, and nothing else.
-- Every table holding tenant data has a tenant_id column, and every query the adapter
-- runs against it binds tenant_id from the caller's TenantScope.

CREATE TABLE tenant_homes (
    tenant_id   TEXT    PRIMARY KEY,
    slug        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
