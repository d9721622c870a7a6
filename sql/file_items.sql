-- Items table of a user file: each item's features from its latest interaction; a user file
-- has no titles, so the title is the item id as text.
-- Inputs:  view raw_interactions (from file_raw_interactions.sql), all rows (before sampling).
-- Outputs: table items(item_id, title VARCHAR, item_* features), one row per item.
CREATE OR REPLACE TABLE items AS
SELECT item_id, CAST(item_id AS VARCHAR) AS title, * EXCLUDE (item_id)
FROM (
    SELECT DISTINCT ON (item_id) COLUMNS('^item_')
    FROM raw_interactions
    ORDER BY item_id, ts DESC NULLS LAST
)
ORDER BY item_id;
