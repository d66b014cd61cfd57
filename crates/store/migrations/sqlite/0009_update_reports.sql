-- Software updates (issue #13): what each device last reported about each release of its
-- model (downloading, installed, failed, refused), so operators can follow a rollout. One row
-- per device, model and release: a later report replaces the earlier one, and a device that
-- changes model keeps its reports about the old model's releases apart from the new one's.
-- `detail` is the device's own words (at most 256 characters) for `failed` and `refused`.
-- A device's reports go with it. Releases are 1..2^63-1.
CREATE TABLE update_reports (
    device_id   TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    release     INTEGER NOT NULL CHECK (release >= 1),
    status      TEXT NOT NULL
                CHECK (status IN ('downloading', 'installed', 'failed', 'refused')),
    detail      TEXT,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, model, release)
) STRICT, WITHOUT ROWID;
-- A model's rollout (counts per release and status) and one release's reports by device id.
CREATE INDEX update_reports_by_release ON update_reports (model, release, device_id);
