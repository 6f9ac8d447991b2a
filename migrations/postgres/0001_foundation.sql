-- Foundation schema (PostgreSQL). Same shape as the SQLite schema so that the two stores
-- share their SQL: times are microseconds since the Unix epoch (UTC), money is integer minor
-- units beside an ISO 4217 code, JSON is text. SKUs use the "C" collation so that pagination
-- order is byte order, as on SQLite.

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

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
    sku               TEXT COLLATE "C" NOT NULL,
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

CREATE TABLE current_prices (
    merchant_id   TEXT NOT NULL,
    sku           TEXT COLLATE "C" NOT NULL,
    price_minor   BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    version       BIGINT NOT NULL,
    effective_at  BIGINT NOT NULL,
    source        TEXT NOT NULL,
    PRIMARY KEY (merchant_id, sku),
    FOREIGN KEY (merchant_id, sku) REFERENCES products (merchant_id, sku) ON DELETE CASCADE
);

CREATE TABLE decisions (
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    seq              BIGINT NOT NULL,
    sku              TEXT COLLATE "C" NOT NULL,
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

CREATE FUNCTION decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decisions are append-only';
END
$$;
CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_append_only();
