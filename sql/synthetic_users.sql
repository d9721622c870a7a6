-- Synthetic users table (the planted user_cluster is left out: it is the answer, not a feature).
-- Inputs:  $path = path of users.parquet written by data.synthetic.generate_synthetic.
-- Outputs: table users(user_id BIGINT, user_age INTEGER, user_gender VARCHAR,
--          user_occupation VARCHAR).
CREATE OR REPLACE TABLE users AS
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    CAST(user_age AS INTEGER) AS user_age,
    CAST(user_gender AS VARCHAR) AS user_gender,
    CAST(user_occupation AS VARCHAR) AS user_occupation
FROM read_parquet($path)
ORDER BY user_id;
