-- Portcullis schema, version 1 (SQLite). STRICT tables so a wrongly typed value is refused at
-- write time instead of surfacing later as a row that does not decode.

-- Server-wide settings: the secret pepper, the bootstrap marker. Written once, read at start.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) STRICT;

-- Registered machine clients. List-valued fields are JSON text so one row is one client and a
-- token request costs one indexed lookup.
CREATE TABLE clients (
    client_id      TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    auth_method    TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    token_ttl_secs INTEGER NOT NULL,
    enabled        INTEGER NOT NULL,
    secret_hashes  TEXT NOT NULL,
    sealed_secret  BLOB,
    jwks           TEXT,
    jwks_uri       TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- Token signing keys; the private half is sealed under the master key (or is an HSM handle).
CREATE TABLE signing_keys (
    kid              TEXT PRIMARY KEY NOT NULL,
    alg              TEXT NOT NULL,
    backend          TEXT NOT NULL,
    sealed_private   BLOB NOT NULL,
    public_jwk       TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL
) STRICT;

-- Revoked access tokens (RFC 7009), kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

-- Client assertion jtis already accepted (RFC 7523 §3 item 7: no replay), until they expire.
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX assertion_jtis_by_expiry ON assertion_jtis (expires_at);

-- The audit hash chain. `seq` is the rowid, so appends are cheap and order is the chain order.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY NOT NULL,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;

-- Append-only by construction: a bug in Portcullis cannot rewrite history. Someone with the file
-- can drop these triggers, which is what the hash chain is there to catch.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
