-- A full hash tile (256 hashes) never changes again: its hashes are committed to by
-- every later checkpoint. Refuse to rewrite or remove one, so that tampering with the
-- tree needs more than an UPDATE (and the integrator re-checks the partial ones
-- against the last signed checkpoint before extending them).

CREATE TRIGGER audit_full_tiles_no_update BEFORE UPDATE ON audit_tiles
WHEN length(OLD.hashes) = 8192
BEGIN
    SELECT RAISE(ABORT, 'full audit tiles are final');
END;

CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
BEGIN
    SELECT RAISE(ABORT, 'audit tiles are append-only');
END;
