-- Device PKI (issue #4): registered devices and every certificate the CA issued, with its
-- revocation state. The store is the one source of revocation truth: CRLs, OCSP answers and
-- mTLS checks are all derived from `certificates`. The same tables as the SQLite schema.
-- Writes that other nodes cache announce `device:<id>` or `cert:<serial>` through
-- `portcullis_notify_change` (0001_initial.sql).

-- Devices, registered from manufacturing lists. `attrs` is a JSON object of strings, as TEXT
-- like the clients' JSON columns. The one-time enrollment secret is stored as its MAC
-- (base64url) and optional deadline; both are NULL once it has been spent, and a deadline
-- without a MAC is refused.
CREATE TABLE devices (
    device_id                    TEXT COLLATE "C" PRIMARY KEY,
    model                        TEXT,
    attrs                        TEXT NOT NULL,
    state                        TEXT NOT NULL,
    enrollment_secret_mac        TEXT COLLATE "C",
    enrollment_secret_expires_at BIGINT,
    created_at                   BIGINT NOT NULL,
    updated_at                   BIGINT NOT NULL,
    CHECK (enrollment_secret_mac IS NOT NULL OR enrollment_secret_expires_at IS NULL)
);

-- Issued certificates. `serial` and `sha256` are lowercase hex; `revocation_reason` is the
-- RFC 5280 CRLReason code, set together with `revoked_at` or not at all.
CREATE TABLE certificates (
    serial            TEXT COLLATE "C" PRIMARY KEY CHECK (serial ~ '^[0-9a-f]+$'),
    device_id         TEXT COLLATE "C",
    subject           TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    sha256            TEXT COLLATE "C" NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    der               BYTEA NOT NULL,
    revoked_at        BIGINT,
    revocation_reason SMALLINT,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);
-- Thumbprint lookups (RFC 8705 `x5t#S256`); unique, so one DER is recorded once.
CREATE UNIQUE INDEX certificates_by_sha256 ON certificates (sha256);
-- A device's certificates in serial order (listings, revoking them all).
CREATE INDEX certificates_by_device ON certificates (device_id, serial);
-- The CRL: revoked certificates in serial order, carrying every column the CRL needs, so
-- listing 100 000 entries is an index-only scan that never touches the DER-carrying rows.
CREATE INDEX certificates_revoked ON certificates (serial)
    INCLUDE (not_after, revoked_at, revocation_reason)
    WHERE revoked_at IS NOT NULL;
