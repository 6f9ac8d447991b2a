-- Audit review (issue 5).

-- The time of the chain's last record: every new record is stamped no earlier, so a
-- merchant's history is in time order as well as in sequence order (price at time T and the
-- prior price rely on it), even if the clock steps back.
ALTER TABLE chain_heads ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0;

-- Whether any guardrail changed the rule's price (the `clipped` outcome filter); checked
-- against the hashed record by verification like every searchable column.
ALTER TABLE decisions ADD COLUMN clipped BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX decisions_by_time ON decisions (merchant_id, created_at, seq);
CREATE INDEX decisions_by_sku_time ON decisions (merchant_id, sku, created_at, seq);

-- The lowest price in force during the 30 days before the current price took effect (EU
-- price-indication rules); kept only for merchants that show it.
ALTER TABLE current_prices ADD COLUMN prior_price_minor BIGINT;
ALTER TABLE merchants ADD COLUMN show_prior_price BOOLEAN NOT NULL DEFAULT FALSE;

-- The service's key for signing audit checkpoints (Ed25519), created on first use and shared
-- by every replica through the database.
CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    secret_key   TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
