-- Archived audit segments (issue #14): each row says the live chain now starts after record
-- `anchor_seq`, whose hash is `anchor_hash`, the records up to it having been written to a
-- signed archive segment (`segment_sha256`) and removed. Append-only like the chain.
CREATE TABLE audit_archives (
    anchor_seq     BIGINT PRIMARY KEY,
    anchor_hash    TEXT NOT NULL,
    first_seq      BIGINT NOT NULL,
    checkpoint_seq BIGINT NOT NULL,
    segment_sha256 TEXT NOT NULL,
    archived_at    BIGINT NOT NULL
);
CREATE TRIGGER audit_archives_no_update BEFORE UPDATE OR DELETE ON audit_archives
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_archives_no_truncate BEFORE TRUNCATE ON audit_archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Records may now be deleted, but only those an archive anchor covers: a bug still cannot
-- remove history that was not first written to an archive. TRUNCATE stays refused.
CREATE FUNCTION audit_log_refuse_unarchived_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq <= COALESCE((SELECT MAX(anchor_seq) FROM audit_archives), 0) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit records are append-only until archived';
END;
$$;
DROP TRIGGER audit_log_no_delete ON audit_log;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_unarchived_delete();
