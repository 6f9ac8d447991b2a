-- Smaller decision rows (issue 16: at most 500 stored bytes a decision). Two things every
-- decision repeated in its row and in each of its indexes shrink:
-- - the merchant: a decision names its merchant by the merchant's number (a small integer,
--   `merchants.number`) instead of its 36-character id, in the row and in every index;
-- - the hashes: `hash` and `prev_hash` hold the 32 bytes of the SHA-256, not 64 hex
--   characters (the store's reads give the hex back; `prev_hash` stays empty where the
--   record before stands for it, see 0017).
-- The table is also a WITHOUT ROWID table keyed by (merchant, seq), so the key is stored
-- once instead of in the table and again in its primary key index. What the chain hashes
-- is the canonical record, which none of this touches: every chain verifies as before.

ALTER TABLE merchants ADD COLUMN number INTEGER;
UPDATE merchants SET number = rowid;
CREATE UNIQUE INDEX merchants_by_number ON merchants (number);
-- A new merchant takes the next number (one writer: no two inserts race for it).
CREATE TRIGGER merchants_numbered AFTER INSERT ON merchants WHEN NEW.number IS NULL
BEGIN
    UPDATE merchants SET number = (SELECT COALESCE(MAX(number), 0) + 1 FROM merchants) WHERE id = NEW.id;
END;

DROP TRIGGER decisions_no_update;
DROP TRIGGER decisions_no_delete;
CREATE TABLE decisions_compact (
    merchant_number  INTEGER NOT NULL REFERENCES merchants (number),
    seq              BIGINT NOT NULL,
    sku              TEXT NOT NULL,
    trigger_kind     TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    currency         TEXT NOT NULL,
    old_price_minor  BIGINT,
    new_price_minor  BIGINT,
    rule_version     BIGINT,
    rule_sha256      TEXT,
    clipped          BOOLEAN NOT NULL DEFAULT FALSE,
    record           TEXT NOT NULL,
    packed           BLOB,
    created_at       BIGINT NOT NULL,
    prev_hash        BLOB NOT NULL,
    hash             BLOB NOT NULL,
    PRIMARY KEY (merchant_number, seq)
) WITHOUT ROWID;
-- A hash that is not hex (never written by the service) keeps its bytes, which no hash
-- matches: verification reports it where it is.
INSERT INTO decisions_compact
SELECT m.number, d.seq, d.sku, d.trigger_kind, d.outcome, d.currency, d.old_price_minor, d.new_price_minor,
       d.rule_version, d.rule_sha256, d.clipped, d.record, d.packed, d.created_at,
       COALESCE(unhex(d.prev_hash), CAST(d.prev_hash AS BLOB)), COALESCE(unhex(d.hash), CAST(d.hash AS BLOB))
FROM decisions d JOIN merchants m ON m.id = d.merchant_id;
DROP TABLE decisions;
ALTER TABLE decisions_compact RENAME TO decisions;
CREATE INDEX decisions_by_time ON decisions (merchant_number, created_at, seq);
CREATE INDEX decisions_by_sku_time ON decisions (merchant_number, sku, created_at, seq);

CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;
