-- Archived audit segments (issue #14): each row says the live chain now starts after record
-- `anchor_seq`, whose hash is `anchor_hash`, the records up to it having been written to a
-- signed archive segment (`segment_sha256`) and removed. Append-only like the chain.
CREATE TABLE audit_archives (
    anchor_seq     INTEGER PRIMARY KEY NOT NULL,
    anchor_hash    TEXT NOT NULL,
    first_seq      INTEGER NOT NULL,
    checkpoint_seq INTEGER NOT NULL,
    segment_sha256 TEXT NOT NULL,
    archived_at    INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_archives_no_update BEFORE UPDATE ON audit_archives
BEGIN
    SELECT RAISE(ABORT, 'audit archive anchors are append-only');
END;
CREATE TRIGGER audit_archives_no_delete BEFORE DELETE ON audit_archives
BEGIN
    SELECT RAISE(ABORT, 'audit archive anchors are append-only');
END;

-- Records may now be deleted, but only those an archive anchor covers: a bug still cannot
-- remove history that was not first written to an archive.
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > COALESCE((SELECT MAX(anchor_seq) FROM audit_archives), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only until archived');
END;
