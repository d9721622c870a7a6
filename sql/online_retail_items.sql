-- UCI Online Retail items: one row per kept stock code.
-- Inputs:  table retail_rows (online_retail_stage.sql).
-- Outputs: table items(item_id VARCHAR (StockCode), title VARCHAR (the Description on most kept
--          rows, ties by the smallest; the stock code when it never has one), item_unit_price
--          DOUBLE (median UnitPrice of its kept rows with a positive price, else NULL)).
CREATE OR REPLACE TEMP TABLE items AS
WITH titles AS (
    SELECT stock_code, description, count(*) AS n
    FROM retail_rows
    WHERE drop_reason IS NULL AND description IS NOT NULL
    GROUP BY stock_code, description
    QUALIFY row_number() OVER (PARTITION BY stock_code ORDER BY n DESC, description) = 1
),
prices AS (
    SELECT stock_code, median(unit_price) FILTER (WHERE unit_price > 0) AS item_unit_price
    FROM retail_rows
    WHERE drop_reason IS NULL
    GROUP BY stock_code
)
SELECT
    p.stock_code AS item_id,
    coalesce(t.description, p.stock_code) AS title,
    CAST(p.item_unit_price AS DOUBLE) AS item_unit_price
FROM prices AS p
LEFT JOIN titles AS t ON t.stock_code = p.stock_code
ORDER BY item_id;
