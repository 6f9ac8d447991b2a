-- Catalogue jobs (see service/src/catalogue/mod.rs). An import's body is kept in the store as
-- it arrives, in pieces that end at a record boundary (`job_pieces`), so that the job survives
-- a restart and any replica can resume it: a piece's products, the job's progress and the
-- piece's rejected lines are written in one transaction, and a resumed job starts at the first
-- piece not applied. The pieces are removed when the job ends.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    merchant_id       TEXT NOT NULL REFERENCES merchants (id),
    kind              TEXT NOT NULL,
    format            TEXT NOT NULL,
    mode              TEXT NOT NULL,
    atomic            BOOLEAN NOT NULL,
    state             TEXT NOT NULL,
    -- The CSV header record (NULL for NDJSON).
    header            TEXT,
    pieces            BIGINT NOT NULL DEFAULT 0,
    pieces_done       BIGINT NOT NULL DEFAULT 0,
    bytes_total       BIGINT NOT NULL DEFAULT 0,
    bytes_done        BIGINT NOT NULL DEFAULT 0,
    lines_total       BIGINT NOT NULL DEFAULT 0,
    lines_read        BIGINT NOT NULL DEFAULT 0,
    applied           BIGINT NOT NULL DEFAULT 0,
    changed           BIGINT NOT NULL DEFAULT 0,
    rejected          BIGINT NOT NULL DEFAULT 0,
    deleted           BIGINT NOT NULL DEFAULT 0,
    note              TEXT,
    error             TEXT,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    lease_owner       TEXT,
    lease_until       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_merchant ON jobs (merchant_id, created_at);
CREATE INDEX jobs_by_state ON jobs (state, created_at);

CREATE TABLE job_pieces (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    n           BIGINT NOT NULL,
    -- The physical line (from 1, the CSV header being line 1) the piece starts at.
    first_line  BIGINT NOT NULL,
    body        BLOB NOT NULL,
    PRIMARY KEY (job_id, n)
);

-- The first 1,000 rejected lines of a job.
CREATE TABLE job_rejections (
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    line     BIGINT NOT NULL,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL,
    details  TEXT NOT NULL,
    PRIMARY KEY (job_id, line)
);

-- A replace import's SKUs (what the file holds), while it runs.
CREATE TABLE job_skus (
    job_id  TEXT NOT NULL REFERENCES jobs (id),
    sku     TEXT NOT NULL,
    PRIMARY KEY (job_id, sku)
);

-- The products a replace import deleted, each as an NDJSON import line, so that importing
-- them again (`GET /v1/jobs/{id}/deleted`) undoes the deletion.
CREATE TABLE job_deleted (
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    sku      TEXT NOT NULL,
    product  TEXT NOT NULL,
    PRIMARY KEY (job_id, sku)
);
