-- UCI Online Retail users: one row per kept customer, with the country of their latest row.
-- Inputs:  table retail_rows (online_retail_stage.sql).
-- Outputs: table users(user_id BIGINT (CustomerID), user_country VARCHAR).
CREATE OR REPLACE TEMP TABLE users AS
SELECT customer_id AS user_id, country AS user_country
FROM retail_rows
WHERE drop_reason IS NULL
QUALIFY row_number() OVER (
    PARTITION BY customer_id ORDER BY invoice_date DESC NULLS LAST, country NULLS LAST
) = 1
ORDER BY user_id;
