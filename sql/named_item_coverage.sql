-- Interactions whose item has no row in the items table (read from another file, so the ids may
-- not join). An anti join on the small items table, then DISTINCT over the unmatched rows only.
-- Inputs:  tables raw_interactions(item_id, ...), items(item_id, ...).
-- Outputs: one row: rows_without_row, ids_without_row (distinct items), example (one of them).
WITH lost AS (
    SELECT r.item_id
    FROM raw_interactions AS r
    ANTI JOIN items AS i ON i.item_id = r.item_id
    WHERE r.item_id IS NOT NULL
)
SELECT
    count(*) AS rows_without_row,
    count(DISTINCT item_id) AS ids_without_row,
    CAST(min(item_id) AS VARCHAR) AS example
FROM lost;
