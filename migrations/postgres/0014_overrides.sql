-- Overrides (see service/src/domain/overrides.rs and service/src/write/overrides.rs): prices a
-- merchant sets by hand for a SKU or for the products whose attributes match, from a start to an
-- end. `applied_phase` is the phase whose price changes the catalogue has been brought to, and
-- `pass_phase` and `cursor_sku` how far a change of phase has got (it is applied a page of SKUs
-- per transaction, so a restart resumes where it stopped). Booleans are 0/1 integers (sqlx's Any driver).
CREATE TABLE price_overrides (
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    id               BIGINT NOT NULL,
    -- One of: a SKU, or a JSON object of attribute values.
    sku              TEXT,
    attributes       TEXT,
    -- One of: a fixed price and its currency, or basis points off the base price.
    price_minor      BIGINT,
    currency         TEXT,
    percent_off_bps  BIGINT,
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT,
    forced           BIGINT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    cancelled_at     BIGINT,
    applied_phase    TEXT NOT NULL,
    -- While a pass is under way: the phase it brings the catalogue to, and its last SKU.
    pass_phase       TEXT,
    cursor_sku       TEXT,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX price_overrides_unsettled ON price_overrides (applied_phase, starts_at);

-- The SKUs an override's price is in force for now: which override, and the price to return to
-- when the last one ends (the price in force before the first, and whether it was the base price).
CREATE TABLE overridden_prices (
    merchant_id    TEXT NOT NULL REFERENCES merchants (id),
    sku            TEXT NOT NULL,
    override_id    BIGINT NOT NULL,
    restore_minor  BIGINT NOT NULL,
    restore_base   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, sku)
);
