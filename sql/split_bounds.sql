-- Timestamp statistics of the sampled interactions, for the default split dates.
-- Inputs:  sampled(ts).
-- Outputs: one row: n_rows, n_ts (rows with a timestamp), ts_min, ts_max, and the day (floor,
--          UTC) of the 80th and 90th percentile timestamps (quantile_disc: an actual row's ts).
SELECT
    count(*) AS n_rows,
    count(ts) AS n_ts,
    min(ts) AS ts_min,
    max(ts) AS ts_max,
    CAST(date_trunc('day', quantile_disc(ts, 0.8)) AS DATE) AS default_training_end,
    CAST(date_trunc('day', quantile_disc(ts, 0.9)) AS DATE) AS default_validation_end
FROM sampled;
