-- Typed staging of a user's interactions file.
-- Inputs:  view file_source(user_id, item_id, weight_raw, ts_raw, user_* and item_* features),
--          registered by data/prepare.py with the column mapping applied (ids already BIGINT or
--          VARCHAR, weight_raw = 1.0 and ts_raw = NULL when not mapped);
--          $ts_kind = 'epoch' (numeric unix seconds), 'text' (VARCHAR/DATE/TIMESTAMP[TZ]: ISO
--          dates/timestamps, zone-less ones meaning UTC; text holding a number is unix seconds)
--          or 'none'.
-- Outputs: table file_staged(user_id, item_id, weight DOUBLE, ts TIMESTAMP (UTC; NULL where
--          unparsable), features..., weight_raw, ts_raw); the raw columns feed file_checks.sql.
CREATE OR REPLACE TEMP TABLE file_staged AS
SELECT
    user_id,
    item_id,
    TRY_CAST(weight_raw AS DOUBLE) AS weight,
    CASE $ts_kind
        WHEN 'epoch' THEN make_timestamp(TRY_CAST(round(TRY_CAST(ts_raw AS DOUBLE) * 1e6) AS BIGINT))
        WHEN 'text' THEN coalesce(
            TRY_CAST(ts_raw AS TIMESTAMPTZ) AT TIME ZONE 'UTC',
            make_timestamp(TRY_CAST(round(TRY_CAST(ts_raw AS DOUBLE) * 1e6) AS BIGINT))
        )
        ELSE CAST(NULL AS TIMESTAMP)
    END AS ts,
    * EXCLUDE (user_id, item_id, weight_raw, ts_raw),
    weight_raw,
    ts_raw
FROM file_source;
