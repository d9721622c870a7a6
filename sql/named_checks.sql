-- Totals of a named dataset's interactions, to check that every row has its ids (and time).
-- Inputs:  table raw_interactions(user_id, item_id, weight, ts).
-- Outputs: one row: rows, units (sum of weight), null_users, null_items, null_ts.
SELECT
    count(*) AS rows,
    sum(weight) AS units,
    count(*) FILTER (WHERE user_id IS NULL) AS null_users,
    count(*) FILTER (WHERE item_id IS NULL) AS null_items,
    count(*) FILTER (WHERE ts IS NULL) AS null_ts
FROM raw_interactions;
