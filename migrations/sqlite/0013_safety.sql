-- The safety net (see service/src/write/safety.rs): a merchant's approval policy, breaker limits,
-- freeze and breaker state in one row (absent: the defaults, nothing frozen or tripped); the
-- breaker's sliding window as counts per minute of automated decisions; and proposals, the
-- held decisions of the chain that wait for a person (at most one pending per SKU).
CREATE TABLE merchant_safety (
    merchant_id     TEXT PRIMARY KEY REFERENCES merchants (id),
    -- JSON: domain::safety::ApprovalPolicy and BreakerLimits (NULL: the defaults).
    approval        TEXT,
    breaker         TEXT,
    frozen_at       BIGINT,
    frozen_by       TEXT,
    frozen_reason   TEXT,
    tripped_at      BIGINT,
    -- JSON: pricing::breaker::Trip.
    tripped_by      TEXT
);

CREATE TABLE breaker_minutes (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    -- Minutes since the Unix epoch.
    minute       BIGINT NOT NULL,
    -- JSON: pricing::breaker::Counts.
    counts       TEXT NOT NULL,
    PRIMARY KEY (merchant_id, minute)
);

CREATE TABLE proposals (
    merchant_id           TEXT NOT NULL REFERENCES merchants (id),
    -- The held decision's sequence number in the merchant's chain.
    seq                   BIGINT NOT NULL,
    sku                   TEXT NOT NULL,
    state                 TEXT NOT NULL,
    reason                TEXT NOT NULL,
    trigger_kind          TEXT NOT NULL,
    currency              TEXT NOT NULL,
    price_minor           BIGINT NOT NULL,
    proposed_price_minor  BIGINT NOT NULL,
    rule_version          BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    -- The decision that approved, rejected or superseded it, who, and when.
    resolved_seq          BIGINT,
    resolved_by           TEXT,
    resolved_at           BIGINT,
    PRIMARY KEY (merchant_id, seq)
);
CREATE UNIQUE INDEX proposals_pending ON proposals (merchant_id, sku) WHERE state = 'pending';
CREATE INDEX proposals_by_state ON proposals (merchant_id, state, seq);
