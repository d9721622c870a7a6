-- Time-window split: train = ts < training_end, valid = training_end <= ts < validation_end,
-- test = ts >= validation_end.
-- Inputs:  sampled (rows with a ts each); $training_end, $validation_end = 'yyyy-mm-dd'
--          (00:00 UTC).
-- Outputs: table assigned = sampled + split VARCHAR ('train' | 'valid' | 'test').
CREATE OR REPLACE TABLE assigned AS
SELECT
    *,
    CASE
        WHEN ts < CAST($training_end AS TIMESTAMP) THEN 'train'
        WHEN ts < CAST($validation_end AS TIMESTAMP) THEN 'valid'
        ELSE 'test'
    END AS split
FROM sampled;
