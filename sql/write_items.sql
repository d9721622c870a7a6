-- Write the items metadata table to parquet.
-- Inputs:  table items(item_id, title, item_* features); $path = output parquet path.
-- Outputs: parquet file at $path, one row per item of the source, ordered by item_id.
COPY (SELECT * FROM items ORDER BY item_id) TO $path (FORMAT parquet);
