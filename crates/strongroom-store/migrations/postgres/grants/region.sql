-- Privileges of the application role on the region database, applied by the owner role
-- after migrating (`strongroom db migrate`). `{app}` stands for the application
-- role's name, already quoted. Run as one batch (one implicit transaction); safe to
-- run again: everything the role holds is revoked first and granted afresh, so the
-- result is exactly this file, whatever an earlier version granted.
--
-- Least privilege, statement by statement: each table gets exactly the privileges of
-- the statements the adapter runs on it (src/sqlite/*.rs, mirrored by
-- src/postgres/*.rs). Nothing else: no TRUNCATE, REFERENCES or TRIGGER anywhere, no
-- CREATE in the schema, no TEMP in the database, and never UPDATE or DELETE on
-- audit_entries. Foreign-key checks run as the table owner, so a referenced table
-- needs no privilege for them.

-- The application role must not be able to step around row-level security or the
-- append-only triggers: it must not be a superuser, bypass RLS, or be (or be a member
-- of) the owner role, which owns the tables and could alter or drop them. Refuse to
-- go on otherwise (and a role that does not exist fails here too).
DO $$
DECLARE
    app oid := '{app}'::regrole;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
               WHERE pg_catalog.pg_has_role(app, r.oid, 'MEMBER')
                 AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole)) THEN
        RAISE EXCEPTION 'the application role {app} is (or belongs to) a superuser, a role that bypasses row-level security, or one that can create roles (and so grant itself the owner)';
    END IF;
    IF pg_catalog.pg_has_role(app, current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'the application role {app} is, or is a member of, the owner role %', current_user;
    END IF;
END
$$;

-- The database: nobody connects but the roles granted here (the owner keeps its own
-- rights); the application role may connect, and nothing more.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM {app}', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {app}', current_database());
END
$$;

-- The schema: use it, create nothing in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM {app};
GRANT USAGE ON SCHEMA public TO {app};

-- Start from nothing. (No table has an identity column or serial, so there is no
-- sequence to grant USAGE on; this revokes any that an earlier grant left.)
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {app};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {app};
-- …and from PUBLIC, which every role belongs to (default privileges could have granted
-- it table rights that bypass the column grants below, or TRUNCATE, which ignores RLS).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;

-- The server checks the schema version at start and refuses one that is behind.
GRANT SELECT ON _sqlx_migrations TO {app};

-- Tenants' homes and keys.
GRANT SELECT, INSERT                 ON tenant_homes  TO {app};  -- create
GRANT UPDATE (keys_destroyed_at)     ON tenant_homes  TO {app};  -- shredding stamps it; nothing else changes
GRANT SELECT, INSERT, DELETE         ON tenant_keks   TO {app};  -- rotation drops old KEKs; shredding drops all
GRANT SELECT, INSERT, DELETE         ON data_keys     TO {app};  -- shredding drops all
GRANT UPDATE (kek_version, wrapped, seals_reserved) ON data_keys TO {app};  -- rewrap, reserve seals
GRANT SELECT, INSERT, UPDATE, DELETE ON sealed_values TO {app};  -- put, reseal; user deletion drops MFA/passkeys
GRANT SELECT, INSERT, UPDATE         ON blobs         TO {app};  -- insert, reseal

-- The audit trail.
GRANT SELECT, INSERT                 ON audit_entries  TO {app};  -- append-only
GRANT SELECT, INSERT                 ON audit_logs     TO {app};  -- init
GRANT UPDATE (size, checkpoint)      ON audit_logs     TO {app};  -- integrate; never the log's key
GRANT SELECT, INSERT, UPDATE         ON audit_tiles    TO {app};  -- INSERT … ON CONFLICT DO UPDATE (triggers keep full tiles final)
GRANT SELECT, INSERT, UPDATE         ON audit_subjects TO {app};  -- insert; erase (wrapped_key := NULL)

-- Identity.
GRANT SELECT, INSERT, UPDATE, DELETE ON users          TO {app};  -- status, password, full name; deletion
GRANT SELECT, INSERT, DELETE         ON role_grants    TO {app};  -- replaced as a set
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions       TO {app};  -- revoke; user deletion
GRANT SELECT, INSERT, UPDATE, DELETE ON refresh_tokens TO {app};  -- mark used; user deletion
GRANT SELECT, INSERT, UPDATE         ON applications   TO {app};  -- (de)activate
GRANT SELECT, INSERT, UPDATE         ON invitations    TO {app};  -- mark used
GRANT SELECT, INSERT, UPDATE         ON support_grants TO {app};  -- revoke, record expiry; never deleted

-- Regulated records. Append-only tables get SELECT and INSERT only; the triggers
-- refuse UPDATE and DELETE to anyone else.
GRANT SELECT, INSERT                 ON record_types     TO {app};
GRANT SELECT, INSERT, UPDATE         ON records          TO {app};  -- seq/status/current version
GRANT SELECT, INSERT, UPDATE         ON record_versions  TO {app};  -- drafts only (trigger freezes approved)
GRANT SELECT, INSERT                 ON record_revisions TO {app};
GRANT SELECT, INSERT                 ON record_events    TO {app};
GRANT SELECT, INSERT                 ON signatures       TO {app};
GRANT SELECT, INSERT, DELETE         ON record_index     TO {app};  -- replaced on every save
