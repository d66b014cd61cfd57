-- Attack detection (issue #14): the counters every node adds its signals to, and the alerts
-- they raise. Counter keys and groups are opaque HMACs made by the caller, never client or
-- device ids in the clear.

-- One row per counter (`key`, an HMAC of rule and key) and time bucket (its start, Unix
-- seconds); `grp` names the counter's group, for counting distinct keys per group. Rows older
-- than the longest window are purged. Nodes add to a row with an upsert, whose row lock
-- serialises them; each batch locks its rows in (key, bucket) order, so two nodes' batches
-- never deadlock.
CREATE TABLE detection_counts (
    key    TEXT COLLATE "C" NOT NULL,
    grp    TEXT COLLATE "C" NOT NULL,
    bucket BIGINT NOT NULL,
    count  BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key, bucket)
);
CREATE INDEX detection_counts_by_group ON detection_counts (grp, bucket);

-- Raised alerts, one per incident: `id` is deterministic across nodes (an HMAC), so two nodes
-- deciding the same incident insert one row. `detail` is sealed by the caller; `rule` is in the
-- clear so operators can filter on it. Listed newest first by (raised_at, id), ids in byte
-- order as on SQLite.
CREATE TABLE alerts (
    id        TEXT COLLATE "C" PRIMARY KEY,
    rule      TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    state     TEXT NOT NULL CHECK (state IN ('open', 'acknowledged')),
    detail    TEXT NOT NULL,
    acked_by  TEXT,
    acked_at  BIGINT
);
CREATE INDEX alerts_by_time ON alerts (raised_at, id);
