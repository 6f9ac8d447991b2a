-- Signed checkpoints the service made (POST /v1/audit/checkpoints): each is the anchor from
-- which a later verification checks only the records after it. Kept as the signed JSON, so a
-- row is trusted only when its signature verifies with one of the service's keys (which live
-- outside the database); a row someone adds or edits is ignored, one deleted makes a check
-- start from an earlier anchor.
CREATE TABLE audit_checkpoints (
    merchant_id  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    signed       TEXT NOT NULL,
    PRIMARY KEY (merchant_id, seq)
);
