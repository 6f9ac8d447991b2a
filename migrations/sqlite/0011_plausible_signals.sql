-- Signals that make sense. A competitor's price more than `max_competitor_ratio` times above or
-- below the product's base price is implausible (a feed that sends 17 for 17.00, a one-cent
-- error) and kept out of rule contexts until the merchant confirms it or widens the ratio;
-- 0 turns the check off. A newer observation of the same competitor starts unconfirmed.
ALTER TABLE merchants ADD COLUMN max_competitor_ratio BIGINT NOT NULL DEFAULT 4;
ALTER TABLE competitor_observations ADD COLUMN confirmed BOOLEAN NOT NULL DEFAULT FALSE;
