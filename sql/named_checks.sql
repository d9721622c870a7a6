-- Checks of a named dataset's loaded tables: ids present, and how well the metadata covers them.
-- Inputs:  tables raw_interactions(user_id, item_id, weight, ts), users(user_id, ...),
--          items(item_id, ...).
-- Outputs: one row: rows, units (sum of weight), null_users, null_items, null_ts,
--          users (distinct users with interactions), users_without_row (no row in users),
--          items (distinct items with interactions), items_without_row (no row in items),
--          example_item_without_row.
WITH used_users AS (
    SELECT DISTINCT user_id FROM raw_interactions WHERE user_id IS NOT NULL
),
used_items AS (
    SELECT DISTINCT item_id FROM raw_interactions WHERE item_id IS NOT NULL
)
SELECT
    (SELECT count(*) FROM raw_interactions) AS rows,
    (SELECT sum(weight) FROM raw_interactions) AS units,
    (SELECT count(*) FILTER (WHERE user_id IS NULL) FROM raw_interactions) AS null_users,
    (SELECT count(*) FILTER (WHERE item_id IS NULL) FROM raw_interactions) AS null_items,
    (SELECT count(*) FILTER (WHERE ts IS NULL) FROM raw_interactions) AS null_ts,
    (SELECT count(*) FROM used_users) AS users,
    (SELECT count(*) FROM used_users ANTI JOIN users USING (user_id)) AS users_without_row,
    (SELECT count(*) FROM used_items) AS items,
    (SELECT count(*) FROM used_items ANTI JOIN items USING (item_id)) AS items_without_row,
    (SELECT min(item_id) FROM used_items ANTI JOIN items USING (item_id))
        AS example_item_without_row;
