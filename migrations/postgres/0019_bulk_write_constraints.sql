-- Three foreign keys cost every row written in bulk a trigger and a locking read of the
-- row it names: a product and a decision read their merchant's row (FOR KEY SHARE), a price
-- in force its product's. Measured on a 300,000-row insert: 4.4 µs a row for the merchant
-- check and 5.3 µs for the product check, against 2 to 3 µs for the insert itself, so
-- about a third of a catalogue import's time in the database. What they guarded is kept by
-- how the store writes, and the tests check it:
-- - every write of a product or a decision is made in a transaction that holds its
--   merchant's chain head row (store/chain.rs, `lock_head`), and that row references the
--   merchant (chain_heads keeps its foreign key); merchants are never deleted;
-- - a price in force is inserted only beside its product's upsert, in the same
--   transaction, repricing only updates prices that exist, and a product's deletion removes
--   its price first, in the same transaction, under the same lock (write/catalogue.rs).
-- SQLite keeps the constraints (it cannot drop one without rebuilding the table, and its
-- import is bound by its single writer, not by these checks).
ALTER TABLE products DROP CONSTRAINT IF EXISTS products_merchant_id_fkey;
ALTER TABLE decisions DROP CONSTRAINT IF EXISTS decisions_merchant_id_fkey;
ALTER TABLE current_prices DROP CONSTRAINT IF EXISTS current_prices_merchant_id_sku_fkey;
