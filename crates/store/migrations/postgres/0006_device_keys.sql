-- Symmetric device keys (issue #12): per-device 256-bit keys for sensors that cannot do
-- public-key cryptography. The material is stored only sealed under the master key (AES-256-GCM
-- envelope, bound to the device and key id); `expires_at` is set by a rotation (NULL: no
-- deadline). A device's keys go with it. The same table as the SQLite schema; every write
-- announces `device:<id>` through `portcullis_notify_change` (0001_initial.sql), so nodes drop
-- the credentials they cache for the device.
CREATE TABLE device_keys (
    device_id  TEXT COLLATE "C" NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    key_id     TEXT COLLATE "C" NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    sealed     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (device_id, key_id)
);
