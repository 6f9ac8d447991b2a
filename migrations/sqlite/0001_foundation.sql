-- Foundation schema (SQLite). Times are microseconds since the Unix epoch, UTC; money is
-- integer minor units beside an ISO 4217 code; JSON is stored as text.

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- API keys. Only the SHA-256 of the secret half is kept. Admin keys have no merchant.
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    merchant_id    TEXT REFERENCES merchants (id),
    roles          TEXT NOT NULL,
    secret_sha256  TEXT NOT NULL,
    label          TEXT,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id);

CREATE TABLE products (
    merchant_id       TEXT NOT NULL REFERENCES merchants (id),
    sku               TEXT NOT NULL,
    currency          TEXT NOT NULL,
    cost_minor        BIGINT NOT NULL,
    base_price_minor  BIGINT NOT NULL,
    guardrails        TEXT NOT NULL,
    attributes        TEXT NOT NULL,
    version           BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, sku)
);

-- The price in force per product. `source` is 'base' while the product's base price applies,
-- 'rule' once a rule has set one.
CREATE TABLE current_prices (
    merchant_id   TEXT NOT NULL,
    sku           TEXT NOT NULL,
    price_minor   BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    version       BIGINT NOT NULL,
    effective_at  BIGINT NOT NULL,
    source        TEXT NOT NULL,
    PRIMARY KEY (merchant_id, sku),
    FOREIGN KEY (merchant_id, sku) REFERENCES products (merchant_id, sku) ON DELETE CASCADE
);

-- Decision history: append-only and hash-chained per merchant (filled by the pricing
-- pipeline). `record` holds the canonical JSON that the hash covers.
CREATE TABLE decisions (
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    seq              BIGINT NOT NULL,
    sku              TEXT NOT NULL,
    trigger_kind     TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    currency         TEXT NOT NULL,
    old_price_minor  BIGINT,
    new_price_minor  BIGINT,
    rule_version     BIGINT,
    rule_sha256      TEXT,
    record           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    PRIMARY KEY (merchant_id, seq)
);
CREATE INDEX decisions_by_sku ON decisions (merchant_id, sku, seq);

CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;
