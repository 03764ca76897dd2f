-- A full hash tile (256 hashes) never changes again: its hashes are committed to by
-- every later checkpoint. Refuse to rewrite or remove one, so that tampering with the
-- tree needs more than an UPDATE (and the integrator re-checks the partial ones
-- against the last signed checkpoint before extending them).

CREATE FUNCTION audit_full_tiles_no_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'full audit tiles are final';
END;
$$;
CREATE TRIGGER audit_full_tiles_no_update BEFORE UPDATE ON audit_tiles
FOR EACH ROW WHEN (octet_length(OLD.hashes) = 8192)
EXECUTE FUNCTION audit_full_tiles_no_update();

CREATE FUNCTION audit_tiles_no_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    RAISE EXCEPTION 'audit tiles are append-only';
END;
$$;
CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
FOR EACH ROW EXECUTE FUNCTION audit_tiles_no_delete();
CREATE TRIGGER audit_tiles_no_truncate BEFORE TRUNCATE ON audit_tiles
FOR EACH STATEMENT EXECUTE FUNCTION audit_tiles_no_delete();
