-- H&M purchases as raw interactions: one row per (customer, article, day), weight = units.
-- The file has one row per unit bought, so the same article bought twice on one day is two
-- identical rows; they become one interaction whose weight counts them. Prices are dropped.
-- Inputs:  $path = path of transactions_train.csv (header "t_dat,customer_id,article_id,price,
--          sales_channel_id"; t_dat YYYY-MM-DD, customer_id a 64-digit hex string, article_id
--          10 digits with a leading zero: read as text so it joins articles.csv).
-- Outputs: table raw_interactions(user_id VARCHAR, item_id VARCHAR, weight DOUBLE (units bought
--          that day), ts TIMESTAMP (the day, 00:00 UTC)).
-- A TEMP table: held in memory and spilled to the temp directory when needed, not written to
-- the scratch database file (4x faster for 30M rows with long string ids).
CREATE OR REPLACE TEMP TABLE raw_interactions AS
SELECT
    customer_id AS user_id,
    article_id AS item_id,
    CAST(count(*) AS DOUBLE) AS weight,
    CAST(t_dat AS TIMESTAMP) AS ts
FROM read_csv(
    $path,
    header = true, delim = ',',
    types = {
        't_dat': 'DATE', 'customer_id': 'VARCHAR', 'article_id': 'VARCHAR', 'price': 'DOUBLE',
        'sales_channel_id': 'INTEGER'
    }
)
GROUP BY customer_id, article_id, t_dat;
