-- Price events out. The decision chain is the outbox: every change of a price in force is a
-- decision with outcome 'changed', appended in the transaction that made the change, so no
-- event can be lost between a commit and its publication. A cursor per (merchant, channel)
-- says how far a channel (JetStream, or one webhook) has published that merchant's chain; a
-- publisher leases it, so one replica publishes a merchant's events at a time, in order.
CREATE TABLE outbox_channels (
    channel    TEXT PRIMARY KEY,
    opened_at  BIGINT NOT NULL
);

CREATE TABLE outbox_cursors (
    merchant_id        TEXT NOT NULL REFERENCES merchants (id),
    channel            TEXT NOT NULL,
    published_through  BIGINT NOT NULL,
    lease_owner        TEXT,
    lease_until        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, channel)
);

-- A merchant's webhook endpoints. The secret signs each delivery (HMAC-SHA256), so it is kept
-- as it is, not hashed; `failures` counts the deliveries that failed in a row, and the next
-- attempt waits until `next_attempt_at` (backoff).
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    url              TEXT NOT NULL,
    secret           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    failures         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    disabled_at      BIGINT,
    disabled_reason  TEXT
);
CREATE INDEX webhooks_by_merchant ON webhooks (merchant_id, created_at);

-- Each attempt to deliver a batch of events to a webhook, newest kept (pruned to the last
-- 1,000 per webhook).
CREATE TABLE webhook_deliveries (
    webhook_id   TEXT NOT NULL REFERENCES webhooks (id),
    attempt_at   BIGINT NOT NULL,
    attempt      BIGINT NOT NULL,
    first_seq    BIGINT NOT NULL,
    last_seq     BIGINT NOT NULL,
    events       BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    delivered    BOOLEAN NOT NULL
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (webhook_id, attempt_at);
