-- Single-use ids (DPoP proofs, outside tokens) that this node of the embedded store decided
-- in memory, written behind in the order they were spent so that a restart loads them back.
-- No unique key: the node's memory is what refuses a replay. `assertion_jtis`' primary key
-- put every id at a random place in its B-tree, so a batch of a thousand ids dirtied about a
-- thousand pages; here a batch fills a few dozen pages at the table's end, and the expiry
-- index, in nearly the same order, grows at its end too.
CREATE TABLE spent_ids (
    expires_at INTEGER NOT NULL,
    scope      TEXT NOT NULL,
    id         TEXT NOT NULL
) STRICT;
CREATE INDEX spent_ids_by_expiry ON spent_ids (expires_at);
