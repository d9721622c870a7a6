-- Raw interactions of a user file: the staged table without its raw helper columns.
-- Inputs:  table file_staged (from file_stage.sql, checked by file_checks.sql).
-- Outputs: view raw_interactions(user_id, item_id, weight DOUBLE, ts TIMESTAMP, features...).
CREATE OR REPLACE VIEW raw_interactions AS
SELECT * EXCLUDE (weight_raw, ts_raw)
FROM file_staged;
