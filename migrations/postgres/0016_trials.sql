-- Trials of a rule version beside the live one: shadows (evaluated on live traffic) and
-- backtests (evaluated over recorded decisions), with each comparison they made. Nothing here
-- is part of the chain: a trial never moves a price.
CREATE TABLE rule_trials (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    id           BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    range_from   BIGINT,
    range_to     BIGINT,
    cursor_seq   BIGINT NOT NULL DEFAULT 0,
    total        BIGINT NOT NULL DEFAULT 0,
    done         BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    reason       TEXT,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, version) REFERENCES rule_versions (merchant_id, version)
);

CREATE INDEX rule_trials_running ON rule_trials (state, kind);

CREATE TABLE trial_comparisons (
    merchant_id  TEXT NOT NULL,
    trial_id     BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    comparison   TEXT NOT NULL,
    PRIMARY KEY (merchant_id, trial_id, seq),
    FOREIGN KEY (merchant_id, trial_id) REFERENCES rule_trials (merchant_id, id)
);
