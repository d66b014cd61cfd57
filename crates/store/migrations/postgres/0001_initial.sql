-- Portcullis schema, version 1 (PostgreSQL). The same tables as the SQLite schema, so one
-- conformance suite holds both backends to one contract. Keys and ids are `COLLATE "C"`:
-- byte-wise order, as in SQLite and Rust, so keyset pagination pages identically everywhere.
-- Unqualified names: the schema is whatever `search_path` names (tests use one per run).

-- Server-wide settings: the secret pepper, the bootstrap marker. Written once, read at start.
CREATE TABLE settings (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Registered machine clients. List-valued fields are JSON text so one row is one client and a
-- token request costs one indexed lookup.
CREATE TABLE clients (
    client_id      TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL,
    auth_method    TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    token_ttl_secs BIGINT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    secret_hashes  TEXT NOT NULL,
    sealed_secret  BYTEA,
    jwks           TEXT,
    jwks_uri       TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Token signing keys; the private half is sealed under the master key (or is an HSM handle).
CREATE TABLE signing_keys (
    kid              TEXT COLLATE "C" PRIMARY KEY,
    alg              TEXT NOT NULL,
    backend          TEXT NOT NULL,
    sealed_private   BYTEA NOT NULL,
    public_jwk       TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    state_changed_at BIGINT NOT NULL
);

-- Revoked access tokens (RFC 7009), kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY,
    client_id  TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

-- Client assertion jtis already accepted (RFC 7523 §3 item 7: no replay), until they expire.
CREATE TABLE assertion_jtis (
    client_id  TEXT COLLATE "C" NOT NULL,
    jti        TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_by_expiry ON assertion_jtis (expires_at);

-- The audit hash chain. `seq` is assigned by the appender (`portcullis_core::audit::link`)
-- under an advisory lock, so order is the chain order. `detail` is TEXT, not JSONB: the hash
-- covers the exact JSON text, and JSONB would reorder keys and normalize numbers.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- Append-only by construction: a bug in Portcullis cannot rewrite history. A superuser can
-- drop these triggers, which is what the hash chain is there to catch. TRUNCATE bypasses row
-- triggers, so it has its own statement trigger.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Announces a change on channel `portcullis_changes` as '<kind>:<id>' (kinds: client,
-- revocation, key), delivered when the writing transaction commits, so every node can drop its
-- cached copy. NOTIFY payloads must stay under 8000 bytes: an id too long for that is sent as
-- '<kind>:*', which listeners treat as "flush everything of this kind". Returns the payload,
-- so a statement can call it once per changed row and count what it announced.
CREATE FUNCTION portcullis_notify_change(kind TEXT, id TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT := kind || ':' || id;
BEGIN
    IF octet_length(payload) > 7000 THEN
        payload := kind || ':*';
    END IF;
    PERFORM pg_notify('portcullis_changes', payload);
    RETURN payload;
END;
$$;
