-- Durable repricing work (see service/src/engine/mod.rs). Whatever asks for a reprice writes
-- its intent here in the same transaction as the change itself; the transaction that appends
-- the decision clears it. A row is claimed by one worker at a time: `claim_token` names the
-- claim and `claimed_until` ends it (a replica that dies loses its claims when they expire);
-- a row whose claim was released after a failure of the service's own waits until
-- `claimed_until` before it is claimed again.

-- Targeted work: one row per product to evaluate again. A new request for a queued product
-- bumps `generation`, so a claim taken before the request cannot clear it.
CREATE TABLE reprice_intents (
    merchant_id    TEXT NOT NULL REFERENCES merchants (id),
    sku            TEXT COLLATE "C" NOT NULL,
    trigger_kind   TEXT NOT NULL,
    generation     BIGINT NOT NULL,
    requested_at   BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    claim_token    TEXT,
    claimed_until  BIGINT,
    PRIMARY KEY (merchant_id, sku)
);
CREATE INDEX reprice_intents_by_age ON reprice_intents (merchant_id, requested_at);

-- Whole-catalogue work: at most one sweep per merchant, walking the catalogue in SKU order.
-- `after_sku` is where the sweep has reached (NULL: not started); it moves in the transaction
-- that appends a page's decisions, so a crash resumes at the first page not written. A new
-- request (activation, rollback, parameters) bumps `generation` and starts again at the top.
CREATE TABLE reprice_sweeps (
    merchant_id    TEXT PRIMARY KEY REFERENCES merchants (id),
    trigger_kind   TEXT NOT NULL,
    generation     BIGINT NOT NULL,
    after_sku      TEXT COLLATE "C",
    requested_at   BIGINT NOT NULL,
    claim_token    TEXT,
    claimed_until  BIGINT
);
