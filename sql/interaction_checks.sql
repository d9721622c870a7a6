-- Checks on the raw interactions of every source, before sampling and splitting.
-- Inputs:  table/view raw_interactions(user_id, item_id, weight DOUBLE, ts, features...).
-- Outputs: one row: n_rows, n_ts (rows with a timestamp); bad_weights (weight missing, NaN or
--          infinite) with an example, negative_weights with the lowest weight; distinct_rows
--          (rows left once exact duplicates, every column equal, are kept once).
SELECT
    count(*) AS n_rows,
    count(ts) AS n_ts,
    count(*) FILTER (WHERE NOT isfinite(coalesce(weight, 'nan'::DOUBLE))) AS bad_weights,
    any_value(coalesce(CAST(weight AS VARCHAR), 'NULL'))
        FILTER (WHERE NOT isfinite(coalesce(weight, 'nan'::DOUBLE))) AS bad_weight_example,
    count(*) FILTER (WHERE weight < 0 AND isfinite(weight)) AS negative_weights,
    min(weight) FILTER (WHERE isfinite(weight)) AS min_weight,
    (SELECT count(*) FROM (SELECT DISTINCT * FROM raw_interactions)) AS distinct_rows
FROM raw_interactions;
