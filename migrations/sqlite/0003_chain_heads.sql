-- The head of each merchant's decision chain: the last sequence number and its hash. Every
-- decision updates it in the same transaction that appends the decision, which also makes
-- that row the lock that keeps one merchant's chain strictly sequential.
CREATE TABLE chain_heads (
    merchant_id  TEXT PRIMARY KEY REFERENCES merchants (id),
    seq          BIGINT NOT NULL,
    head_hash    TEXT NOT NULL
);
