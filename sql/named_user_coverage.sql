-- Interactions whose user has no row in the users table (read from another file, so the ids may
-- not join). An anti join on the small users table, then DISTINCT over the unmatched rows only.
-- Inputs:  tables raw_interactions(user_id, ...), users(user_id, ...).
-- Outputs: one row: rows_without_row, ids_without_row (distinct users), example (one of them).
WITH lost AS (
    SELECT r.user_id
    FROM raw_interactions AS r
    ANTI JOIN users AS u ON u.user_id = r.user_id
    WHERE r.user_id IS NOT NULL
)
SELECT
    count(*) AS rows_without_row,
    count(DISTINCT user_id) AS ids_without_row,
    CAST(min(user_id) AS VARCHAR) AS example
FROM lost;
