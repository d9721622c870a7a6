-- Seeded random 80/10/10 split within each user, for sources without timestamps.
-- Each user's rows are ordered by a seeded hash; with n rows, the row at position k (0-based)
-- goes to train when 10k < 8n, to valid when 10k < 9n, else to test, so a user's first row is
-- always in train and users with few rows keep most of them in train.
-- Inputs:  sampled(user_id, item_id, weight, ...); $seed = non-negative int.
-- Outputs: table assigned = sampled + split VARCHAR ('train' | 'valid' | 'test').
CREATE OR REPLACE TABLE assigned AS
SELECT
    * EXCLUDE (split_pos, split_n),
    CASE
        WHEN 10 * split_pos < 8 * split_n THEN 'train'
        WHEN 10 * split_pos < 9 * split_n THEN 'valid'
        ELSE 'test'
    END AS split
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY user_id
            ORDER BY hash(CAST($seed AS BIGINT), user_id, item_id, weight), item_id, weight
        ) - 1 AS split_pos,
        count(*) OVER (PARTITION BY user_id) AS split_n
    FROM sampled
);
