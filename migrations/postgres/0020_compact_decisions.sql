-- Smaller decision rows (issue 16: at most 500 stored bytes a decision). Two things every
-- decision repeated in its row and in each of its indexes shrink:
-- - the merchant: a decision names its merchant by the merchant's number (a BIGINT from a
--   sequence, `merchants.number`) instead of its 36-character id, in the row and in every
--   index (integer comparisons also make the index inserts cheaper than text ones);
-- - the hashes: `hash` and `prev_hash` hold the 32 bytes of the SHA-256, not 64 hex
--   characters (the store's reads give the hex back; `prev_hash` stays empty where the
--   record before stands for it, see 0017).
-- The fixed-width columns come first, so the row carries no alignment padding. What the
-- chain hashes is the canonical record, which none of this touches: every chain verifies
-- as before.

ALTER TABLE merchants ADD COLUMN number BIGINT;
CREATE SEQUENCE merchant_numbers OWNED BY merchants.number;
UPDATE merchants SET number = nextval('merchant_numbers');
ALTER TABLE merchants ALTER COLUMN number SET DEFAULT nextval('merchant_numbers'),
                      ALTER COLUMN number SET NOT NULL;
CREATE UNIQUE INDEX merchants_by_number ON merchants (number);

CREATE TABLE decisions_compact (
    merchant_number  BIGINT NOT NULL,
    seq              BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    old_price_minor  BIGINT,
    new_price_minor  BIGINT,
    rule_version     BIGINT,
    clipped          BOOLEAN NOT NULL DEFAULT FALSE,
    sku              TEXT COLLATE "C" NOT NULL,
    trigger_kind     TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    currency         TEXT NOT NULL,
    rule_sha256      TEXT,
    record           TEXT NOT NULL,
    packed           BYTEA,
    prev_hash        BYTEA NOT NULL,
    hash             BYTEA NOT NULL,
    CONSTRAINT decisions_compact_pkey PRIMARY KEY (merchant_number, seq)
);
INSERT INTO decisions_compact (merchant_number, seq, created_at, old_price_minor, new_price_minor, rule_version,
                               clipped, sku, trigger_kind, outcome, currency, rule_sha256, record, packed,
                               prev_hash, hash)
SELECT m.number, d.seq, d.created_at, d.old_price_minor, d.new_price_minor, d.rule_version, d.clipped, d.sku,
       d.trigger_kind, d.outcome, d.currency, d.rule_sha256, d.record, d.packed,
       decode(d.prev_hash, 'hex'), decode(d.hash, 'hex')
FROM decisions d JOIN merchants m ON m.id = d.merchant_id;
DROP TABLE decisions;
ALTER TABLE decisions_compact RENAME TO decisions;
ALTER TABLE decisions RENAME CONSTRAINT decisions_compact_pkey TO decisions_pkey;
CREATE INDEX decisions_by_time ON decisions (merchant_number, created_at, seq);
CREATE INDEX decisions_by_sku_time ON decisions (merchant_number, sku, created_at, seq);

CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_append_only();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION decisions_append_only();
