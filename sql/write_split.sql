-- Write one split window to parquet. Rows are not sorted (sorting wide rows doubled the time at
-- 10M rows); the set of rows is deterministic, their order in the file is not.
-- Inputs:  view canonical; $split = 'train' | 'valid' | 'test'; $path = output parquet path.
-- Outputs: parquet file at $path with the canonical columns (user_id, item_id, weight, ts,
--          user_* and item_* features).
COPY (
    SELECT * EXCLUDE (split)
    FROM canonical
    WHERE split = $split
) TO $path (FORMAT parquet);
