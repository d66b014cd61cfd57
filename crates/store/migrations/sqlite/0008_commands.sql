-- Commands to devices (issue #13): what a sender asked a device to do, from approval through
-- delivery to the device's result. A command gets its device's next sequence number and its
-- signed form only when it is queued, in the transaction that bumps `command_sequences`, so
-- the numbers a device receives rise in the order they were committed. `args` and `output`
-- are JSON text. A device's commands go with it; its last sequence number does not (no
-- foreign key), so numbers never start over for an id that is registered again.
CREATE TABLE commands (
    command_id         TEXT PRIMARY KEY NOT NULL,
    device_id          TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    args               TEXT NOT NULL,
    sender             TEXT NOT NULL,
    rule               TEXT NOT NULL,
    approvals_required INTEGER NOT NULL CHECK (approvals_required BETWEEN 1 AND 2),
    approver           TEXT,
    state              TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    seq                INTEGER CHECK (seq >= 1),
    signed             BLOB,
    queued_at          INTEGER,
    delivered_at       INTEGER,
    finished_at        INTEGER,
    output             TEXT,
    CHECK ((seq IS NULL) = (signed IS NULL)),
    -- One number per device; commands not queued yet have none (NULLs never clash).
    UNIQUE (device_id, seq)
) STRICT;
-- What a device may receive: its queued commands by sequence number.
CREATE INDEX commands_deliverable ON commands (device_id, state, seq);
-- A rule's per-device rate limit: commands it allowed since a moment.
CREATE INDEX commands_by_rule ON commands (device_id, rule, created_at);
-- One device's commands in id (creation) order, for listings.
CREATE INDEX commands_by_device ON commands (device_id, command_id);

-- The last command sequence number given to each device; the row is bumped (and so
-- locked) by every queuing transaction. Numbers are 1..2^63-1.
CREATE TABLE command_sequences (
    device_id TEXT PRIMARY KEY NOT NULL,
    last_seq  INTEGER NOT NULL CHECK (last_seq >= 1)
) STRICT, WITHOUT ROWID;
