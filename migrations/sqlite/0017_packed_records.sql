-- Decision records kept packed (store/packing.rs): one format byte and a zstd frame of the
-- canonical JSON, with the values the row's own columns hold taken out. A packed row keeps
-- `record` empty; rows written before keep their JSON in `record` and `packed` NULL. What
-- the chain hashes is the canonical JSON either way, and that is what the store reads back.
ALTER TABLE decisions ADD COLUMN packed BLOB;
