-- The distinct days (UTC) that hold sampled interactions, for split dates that give every
-- window rows.
-- Inputs:  sampled(ts), every row with a timestamp.
-- Outputs: one row per day, in order: day DATE.
SELECT DISTINCT CAST(ts AS DATE) AS day
FROM sampled
ORDER BY day;
