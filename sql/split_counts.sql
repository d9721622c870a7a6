-- Size of each split window.
-- Inputs:  table assigned (from split_time_window.sql or split_random_per_user.sql).
-- Outputs: one row per non-empty window: split, n_rows, n_users, n_items, ts_min, ts_max.
SELECT
    split,
    count(*) AS n_rows,
    count(DISTINCT user_id) AS n_users,
    count(DISTINCT item_id) AS n_items,
    min(ts) AS ts_min,
    max(ts) AS ts_max
FROM assigned
GROUP BY split;
