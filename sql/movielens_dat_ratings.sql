-- MovieLens-1M / 10M ratings as raw interactions.
-- Inputs:  $path = path of ratings.dat ("UserID::MovieID::Rating::Timestamp", no header; 10M has
--          half-star ratings).
-- Outputs: table raw_interactions(user_id BIGINT, item_id BIGINT, weight DOUBLE (the rating),
--          ts TIMESTAMP (UTC, from unix seconds)).
-- A TEMP table: held in memory and spilled to the temp directory when needed, not written to
-- the scratch database file (4x faster for 30M rows with long string ids).
CREATE OR REPLACE TEMP TABLE raw_interactions AS
SELECT
    user_id,
    item_id,
    rating AS weight,
    make_timestamp(epoch_s * 1000000) AS ts
FROM read_csv(
    $path,
    delim = '::', header = false, quote = '', escape = '', auto_detect = false,
    columns = {'user_id': 'BIGINT', 'item_id': 'BIGINT', 'rating': 'DOUBLE', 'epoch_s': 'BIGINT'}
);
