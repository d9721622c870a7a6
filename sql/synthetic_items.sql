-- Synthetic items table (the planted item_cluster is left out: it is the answer, not a feature).
-- Inputs:  $path = path of items.parquet written by data.synthetic.generate_synthetic.
-- Outputs: table items(item_id BIGINT, title VARCHAR, item_genres VARCHAR[], item_year INTEGER).
CREATE OR REPLACE TABLE items AS
SELECT
    CAST(item_id AS BIGINT) AS item_id,
    CAST(title AS VARCHAR) AS title,
    CAST(item_genres AS VARCHAR[]) AS item_genres,
    CAST(item_year AS INTEGER) AS item_year
FROM read_parquet($path)
ORDER BY item_id;
