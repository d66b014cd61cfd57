-- Device PKI (issue #4): registered devices and every certificate the CA issued, with its
-- revocation state. The store is the one source of revocation truth: CRLs, OCSP answers and
-- mTLS checks are all derived from `certificates`.

-- Devices, registered from manufacturing lists. `attrs` is a JSON object of strings. The
-- one-time enrollment secret is stored as its MAC (base64url) and optional deadline; both are
-- NULL once it has been spent, and a deadline without a MAC is refused.
CREATE TABLE devices (
    device_id                    TEXT PRIMARY KEY NOT NULL,
    model                        TEXT,
    attrs                        TEXT NOT NULL,
    state                        TEXT NOT NULL,
    enrollment_secret_mac        TEXT,
    enrollment_secret_expires_at INTEGER,
    created_at                   INTEGER NOT NULL,
    updated_at                   INTEGER NOT NULL,
    CHECK (enrollment_secret_mac IS NOT NULL OR enrollment_secret_expires_at IS NULL)
) STRICT;

-- Issued certificates. `serial` and `sha256` are lowercase hex; `revocation_reason` is the
-- RFC 5280 CRLReason code, set together with `revoked_at` or not at all.
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY NOT NULL
                      CHECK (serial <> '' AND serial NOT GLOB '*[^0-9a-f]*'),
    device_id         TEXT,
    subject           TEXT NOT NULL,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    sha256            TEXT NOT NULL
                      CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    der               BLOB NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
) STRICT;
-- Thumbprint lookups (RFC 8705 `x5t#S256`); unique, so one DER is recorded once.
CREATE UNIQUE INDEX certificates_by_sha256 ON certificates (sha256);
-- A device's certificates in serial order (listings, revoking them all).
CREATE INDEX certificates_by_device ON certificates (device_id, serial);
-- The CRL: revoked certificates in serial order, covering every column the CRL needs, so
-- listing 100 000 entries reads this index alone and never the DER-carrying table rows.
CREATE INDEX certificates_revoked ON certificates (serial, not_after, revoked_at, revocation_reason)
    WHERE revoked_at IS NOT NULL;
