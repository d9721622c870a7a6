-- Write the users metadata table to parquet.
-- Inputs:  table users(user_id, user_* features); $path = output parquet path.
-- Outputs: parquet file at $path, one row per user of the source, ordered by user_id.
COPY (SELECT * FROM users ORDER BY user_id) TO $path (FORMAT parquet);
