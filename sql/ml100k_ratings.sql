-- MovieLens-100k ratings as raw interactions.
-- Inputs:  $path = path of ml-100k/u.data ("user id<TAB>item id<TAB>rating<TAB>unix seconds").
-- Outputs: table raw_interactions(user_id BIGINT, item_id BIGINT, weight DOUBLE (the 1-5
--          rating), ts TIMESTAMP (UTC)).
CREATE OR REPLACE TABLE raw_interactions AS
SELECT
    user_id,
    item_id,
    CAST(rating AS DOUBLE) AS weight,
    make_timestamp(epoch_s * 1000000) AS ts
FROM read_csv(
    $path,
    delim = '\t', header = false, quote = '', escape = '',
    columns = {'user_id': 'BIGINT', 'item_id': 'BIGINT', 'rating': 'INTEGER', 'epoch_s': 'BIGINT'}
);
