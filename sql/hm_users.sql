-- H&M users from customers.csv: age bucket, club membership and newsletter frequency.
-- Inputs:  $path = path of customers.csv (header "customer_id,FN,Active,club_member_status,
--          fashion_news_frequency,age,postal_code"; every column read as text).
-- Outputs: table users(user_id VARCHAR, user_age_bucket INTEGER (age rounded down to ten
--          years: 20 = 20-29; NULL when missing), user_club_member_status VARCHAR (lower case),
--          user_fashion_news_frequency VARCHAR (lower case, so NONE and None are one value)),
--          one row per customer.
CREATE OR REPLACE TEMP TABLE users AS
SELECT
    trim(customer_id) AS user_id,
    CAST(floor(TRY_CAST(trim(age) AS DOUBLE) / 10) * 10 AS INTEGER) AS user_age_bucket,
    nullif(lower(trim(club_member_status)), '') AS user_club_member_status,
    nullif(lower(trim(fashion_news_frequency)), '') AS user_fashion_news_frequency
FROM read_csv($path, header = true, all_varchar = true)
QUALIFY row_number() OVER (
    PARTITION BY trim(customer_id)
    ORDER BY age NULLS LAST, club_member_status NULLS LAST, fashion_news_frequency NULLS LAST
) = 1
ORDER BY user_id;
