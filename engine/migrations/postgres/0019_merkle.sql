-- patchday store, PostgreSQL backend: stored Merkle nodes of the audit log (issue 14).
--
-- The root of every perfect subtree of the RFC 6962 tree over the events (leaf i = event
-- seq i+1) with 2^level leaves, level >= 4 (smaller ones are hashed from at most 16 events
-- when needed): node (level, idx) covers leaves idx*2^level .. (idx+1)*2^level - 1. Written
-- by the checkpointer as it catches up with the log (O(log n) per event), read to make
-- inclusion and consistency proofs and to resume the tree at the last checkpoint in O(log n).
-- Never trusted: `audit verify` recomputes every root from the events; a proof made from
-- these nodes is checked against the signed checkpoint before it is printed.
CREATE TABLE merkle_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
