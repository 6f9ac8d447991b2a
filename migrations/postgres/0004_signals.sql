-- Market and demand signals. Competitor observations keep the latest observation per
-- (product, competitor): an older one never overwrites a newer one, and a replayed one changes
-- nothing. Demand events are kept whole, once each (their id makes a replay harmless), and
-- summed over trailing windows when a rule runs.

CREATE TABLE competitor_observations (
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    sku             TEXT COLLATE "C" NOT NULL,
    competitor      TEXT NOT NULL,
    price_minor     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    in_stock        BOOLEAN NOT NULL,
    observed_at     BIGINT NOT NULL,
    observation_id  TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, sku, competitor)
);

CREATE TABLE demand_events (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    event_id     TEXT NOT NULL,
    sku          TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    quantity     BIGINT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, event_id)
);
CREATE INDEX demand_events_by_sku ON demand_events (merchant_id, sku, occurred_at);
