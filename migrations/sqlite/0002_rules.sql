-- Merchants' pricing rules: immutable versions (the upload, its component form and the
-- compiled artifact) with mutable parameters, and the log of activations and rollbacks.

CREATE TABLE rule_versions (
    merchant_id        TEXT NOT NULL REFERENCES merchants (id),
    version            BIGINT NOT NULL,
    sha256             TEXT NOT NULL,
    size_bytes         BIGINT NOT NULL,
    wasm               BLOB NOT NULL,
    component          BLOB NOT NULL,
    artifact           BLOB NOT NULL,
    compile_ms         BIGINT NOT NULL,
    params             TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    params_updated_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, version),
    UNIQUE (merchant_id, sha256)
);

-- Each activation points at the one it replaced, so a rollback walks back the history.
CREATE TABLE rule_activations (
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    seq           BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    previous_seq  BIGINT,
    activated_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, seq),
    FOREIGN KEY (merchant_id, version) REFERENCES rule_versions (merchant_id, version)
);
