-- The decision history is append-only: TRUNCATE is refused like UPDATE and DELETE (a
-- statement-level trigger; SQLite has no TRUNCATE, and its DELETE trigger covers emptying).
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION decisions_append_only();
