-- Commands to devices (issue #13): what a sender asked a device to do, from approval through
-- delivery to the device's result. A command gets its device's next sequence number and its
-- signed form only when it is queued, in the transaction that bumps `command_sequences`
-- (whose row lock is held until commit, so two nodes never give one number twice and the
-- numbers are committed in rising order). `args` and `output` are JSON text, like the
-- clients' JSON columns. The same tables as the SQLite schema; queuing announces
-- `command:<device id>` through `portcullis_notify_change` (0001_initial.sql), so the node
-- holding the device's connection or long poll wakes it. A device's commands go with it; its
-- last sequence number does not (no foreign key), so numbers never start over for an id
-- that is registered again.
CREATE TABLE commands (
    command_id         TEXT COLLATE "C" PRIMARY KEY,
    device_id          TEXT COLLATE "C" NOT NULL
                       REFERENCES devices (device_id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    args               TEXT NOT NULL,
    sender             TEXT COLLATE "C" NOT NULL,
    rule               TEXT COLLATE "C" NOT NULL,
    approvals_required SMALLINT NOT NULL CHECK (approvals_required BETWEEN 1 AND 2),
    approver           TEXT COLLATE "C",
    state              TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    seq                BIGINT CHECK (seq >= 1),
    signed             BYTEA,
    queued_at          BIGINT,
    delivered_at       BIGINT,
    finished_at        BIGINT,
    output             TEXT,
    CHECK ((seq IS NULL) = (signed IS NULL)),
    -- One number per device; commands not queued yet have none (NULLs never clash).
    UNIQUE (device_id, seq)
);
-- What a device may receive: its queued commands by sequence number.
CREATE INDEX commands_deliverable ON commands (device_id, state, seq);
-- A rule's per-device rate limit: commands it allowed since a moment.
CREATE INDEX commands_by_rule ON commands (device_id, rule, created_at);
-- One device's commands in id (creation) order, for listings.
CREATE INDEX commands_by_device ON commands (device_id, command_id);

-- The last command sequence number given to each device; the row is bumped (and so
-- locked until commit) by every queuing transaction. Numbers are 1..2^63-1.
CREATE TABLE command_sequences (
    device_id TEXT COLLATE "C" PRIMARY KEY,
    last_seq  BIGINT NOT NULL CHECK (last_seq >= 1)
);
