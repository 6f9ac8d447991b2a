-- The decision history kept two indexes that lead with (merchant, SKU): by sequence and by
-- time. A merchant's records are in time order as well as sequence order (each carries its
-- chain head's time, never before the last), so the one by time serves both kinds of
-- question about a SKU; the other cost every decision an index entry and nothing else.
DROP INDEX decisions_by_sku;
