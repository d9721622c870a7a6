-- Data checks on a staged user interactions file.
-- Inputs:  table file_staged (from file_stage.sql).
-- Outputs: one row: n_rows, null_users, null_items, bad_weights (mapped weight missing or not a
--          number), missing_ts, bad_ts (present but unparsable), far_ts (after year 2200: epoch
--          milliseconds?), and one example raw value for bad_weights / bad_ts.
SELECT
    count(*) AS n_rows,
    count(*) FILTER (WHERE user_id IS NULL) AS null_users,
    count(*) FILTER (WHERE item_id IS NULL) AS null_items,
    count(*) FILTER (WHERE weight IS NULL) AS bad_weights,
    count(*) FILTER (WHERE ts_raw IS NULL) AS missing_ts,
    count(*) FILTER (WHERE ts IS NULL AND ts_raw IS NOT NULL) AS bad_ts,
    count(*) FILTER (WHERE ts > TIMESTAMP '2200-01-01') AS far_ts,
    any_value(CAST(weight_raw AS VARCHAR)) FILTER (WHERE weight IS NULL) AS bad_weight_example,
    any_value(CAST(ts_raw AS VARCHAR)) FILTER (WHERE ts IS NULL AND ts_raw IS NOT NULL)
        AS bad_ts_example
FROM file_staged;
