-- Leases for leader-only jobs (key rotation checks, purges): one holder per job at a time,
-- until `expires_at` (Unix seconds); the holder renews, anyone may take an expired lease.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
