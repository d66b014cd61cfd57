-- Gateway replay protection (issue #12): the highest message counter accepted per device, by
-- any node. A message is accepted only if a conditional write raises this value (row locks
-- serialise two nodes offered the same message); it never expires. Counters are 1..2^63-1.
CREATE TABLE device_counters (
    device_id TEXT PRIMARY KEY NOT NULL,
    counter   BIGINT NOT NULL CHECK (counter >= 0)
);
