-- Synthetic interactions as raw interactions.
-- Inputs:  $path = path of interactions.parquet written by data.synthetic.generate_synthetic.
-- Outputs: table raw_interactions(user_id BIGINT, item_id BIGINT, weight DOUBLE, ts TIMESTAMP).
CREATE OR REPLACE TABLE raw_interactions AS
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    CAST(item_id AS BIGINT) AS item_id,
    CAST(weight AS DOUBLE) AS weight,
    CAST(ts AS TIMESTAMP) AS ts
FROM read_parquet($path);
