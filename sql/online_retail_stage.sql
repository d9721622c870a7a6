-- UCI Online Retail rows typed, each with the rule that drops it (NULL when it is kept).
-- Rules, first match wins: 'cancelled' (InvoiceNo starting with C: cancellations),
-- 'non_positive_quantity' (Quantity missing, not a number, zero or negative: returns and stock
-- adjustments), 'no_customer' (CustomerID empty), 'non_product' (StockCode without the 5-digit
-- product number: postage POST/DOT, manual M, bank charges, fees, samples, discounts).
-- Blank rows (every cell empty) are skipped.
-- Inputs:  table retail_text (online_retail_text_*.sql).
-- Outputs: table retail_rows(invoice VARCHAR, stock_code VARCHAR (trimmed, upper case),
--          description VARCHAR (trimmed, NULL when empty), quantity DOUBLE, invoice_date_text
--          VARCHAR, invoice_date TIMESTAMP (ISO or M/D/YYYY H:MM; NULL when neither),
--          unit_price DOUBLE, customer_text VARCHAR, customer_id BIGINT, country VARCHAR,
--          drop_reason VARCHAR).
CREATE OR REPLACE TEMP TABLE retail_rows AS
WITH typed AS (
    SELECT
        upper(trim(InvoiceNo)) AS invoice,
        upper(trim(StockCode)) AS stock_code,
        nullif(trim(Description), '') AS description,
        TRY_CAST(trim(Quantity) AS DOUBLE) AS quantity,
        nullif(trim(InvoiceDate), '') AS invoice_date_text,
        coalesce(
            TRY_CAST(trim(InvoiceDate) AS TIMESTAMP),
            try_strptime(trim(InvoiceDate), '%m/%d/%Y %H:%M'),
            try_strptime(trim(InvoiceDate), '%m/%d/%Y %H:%M:%S')
        ) AS invoice_date,
        TRY_CAST(trim(UnitPrice) AS DOUBLE) AS unit_price,
        nullif(trim(CustomerID), '') AS customer_text,
        CAST(TRY_CAST(trim(CustomerID) AS DOUBLE) AS BIGINT) AS customer_id,
        nullif(trim(Country), '') AS country
    FROM retail_text
    WHERE coalesce(InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
                   CustomerID, Country) IS NOT NULL
)
SELECT
    *,
    CASE
        WHEN invoice LIKE 'C%' THEN 'cancelled'
        WHEN quantity IS NULL OR quantity <= 0 THEN 'non_positive_quantity'
        WHEN customer_text IS NULL THEN 'no_customer'
        WHEN NOT regexp_matches(coalesce(stock_code, ''), '^[0-9]{5}') THEN 'non_product'
    END AS drop_reason
FROM typed;
