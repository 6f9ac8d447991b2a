-- Rules of pricing:policy@1.1.0 declare their parameters: the declaration read at upload (JSON,
-- NULL for a 1.0.0 or untyped rule), and, for a version made from a stock policy, its name.
ALTER TABLE rule_versions ADD COLUMN params_schema TEXT;
ALTER TABLE rule_versions ADD COLUMN stock TEXT;
