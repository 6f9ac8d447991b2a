-- Decision records kept packed (store/packing.rs): one format byte and a zstd frame of the
-- canonical JSON, with the values the row's own columns hold taken out. A packed row keeps
-- `record` empty; rows written before keep their JSON in `record` and `packed` NULL. What
-- the chain hashes is the canonical JSON either way, and that is what the store reads back.
-- Such rows also leave `prev_hash` empty (it is the hash of the record before) and
-- `rule_sha256` NULL when they name a rule version (the version's hash stands for it); the
-- store's reads put both back (store/chain.rs).
ALTER TABLE decisions ADD COLUMN packed BYTEA;
