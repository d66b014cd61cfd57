-- Gateway replay protection (issue #12): the highest message counter accepted per device, by
-- any node. A message is accepted only if a conditional write raises this value; it never
-- expires (a device's counter must keep rising for its whole life). Counters are 1..2^63-1.
CREATE TABLE device_counters (
    device_id TEXT PRIMARY KEY NOT NULL,
    counter   INTEGER NOT NULL CHECK (counter >= 0)
) STRICT, WITHOUT ROWID;
