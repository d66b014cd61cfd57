-- Symmetric device keys (issue #12): per-device 256-bit keys for sensors that cannot do
-- public-key cryptography. The material is stored only sealed under the master key (AES-256-GCM
-- envelope, bound to the device and key id); `expires_at` is set by a rotation (NULL: no
-- deadline). A device's keys go with it.
CREATE TABLE device_keys (
    device_id  TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    key_id     TEXT NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (device_id, key_id)
) STRICT;
