-- Leases for leader-only jobs (key rotation checks, purges): one holder per job at a time,
-- until `expires_at` (Unix seconds, judged by the database clock); the holder renews, anyone
-- may take an expired lease.
CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
