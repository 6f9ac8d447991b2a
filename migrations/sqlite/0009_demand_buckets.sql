-- Demand as counters: per (merchant, SKU, kind, hour) the sum of the quantities of the events
-- that occurred in that hour, updated in the ingest transaction, so that a context's 1/7/30-day
-- windows read at most 30 x 24 rows per kind whatever the traffic. Each counted event's id is
-- kept for the deduplication window (35 days) so that a replayed event never counts twice.
-- Inventory is a level, not a count: the latest one per SKU is kept.
CREATE TABLE demand_buckets (
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    sku           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    bucket_start  BIGINT NOT NULL,
    quantity      BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, sku, kind, bucket_start)
);

CREATE TABLE demand_event_ids (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    event_id     TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, event_id)
);
CREATE INDEX demand_event_ids_by_time ON demand_event_ids (occurred_at);

CREATE TABLE inventory_levels (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    sku          TEXT NOT NULL,
    quantity     BIGINT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    event_id     TEXT NOT NULL,
    PRIMARY KEY (merchant_id, sku)
);

-- The events stored so far, folded into the new tables.
INSERT INTO demand_buckets (merchant_id, sku, kind, bucket_start, quantity)
SELECT merchant_id, sku, kind, (occurred_at / 3600000000) * 3600000000, SUM(quantity)
FROM demand_events WHERE kind <> 'inventory'
GROUP BY merchant_id, sku, kind, (occurred_at / 3600000000) * 3600000000;

INSERT INTO demand_event_ids (merchant_id, event_id, occurred_at)
SELECT merchant_id, event_id, occurred_at FROM demand_events WHERE kind <> 'inventory';

INSERT INTO inventory_levels (merchant_id, sku, quantity, occurred_at, event_id)
SELECT merchant_id, sku, quantity, occurred_at, event_id FROM (
    SELECT merchant_id, sku, quantity, occurred_at, event_id,
           ROW_NUMBER() OVER (PARTITION BY merchant_id, sku ORDER BY occurred_at DESC, event_id DESC) AS newest
    FROM demand_events WHERE kind = 'inventory'
) AS levels WHERE newest = 1;

DROP TABLE demand_events;
