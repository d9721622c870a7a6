-- MovieLens-20M / 25M ratings as raw interactions.
-- Inputs:  $path = path of ratings.csv (header "userId,movieId,rating,timestamp"; half-star
--          ratings; unix seconds).
-- Outputs: table raw_interactions(user_id BIGINT, item_id BIGINT, weight DOUBLE (the rating),
--          ts TIMESTAMP (UTC)).
-- A TEMP table: held in memory and spilled to the temp directory when needed, not written to
-- the scratch database file (4x faster for 30M rows with long string ids).
CREATE OR REPLACE TEMP TABLE raw_interactions AS
SELECT
    CAST(userId AS BIGINT) AS user_id,
    CAST(movieId AS BIGINT) AS item_id,
    CAST(rating AS DOUBLE) AS weight,
    make_timestamp(CAST("timestamp" AS BIGINT) * 1000000) AS ts
FROM read_csv(
    $path,
    header = true, delim = ',', quote = '"', escape = '"',
    types = {'userId': 'BIGINT', 'movieId': 'BIGINT', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}
);
