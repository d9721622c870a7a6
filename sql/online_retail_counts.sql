-- What the UCI Online Retail rules drop, and the rows they keep that cannot be used.
-- Inputs:  table retail_rows (online_retail_stage.sql).
-- Outputs: one row: rows, cancelled, non_positive_quantity, no_customer, non_product, kept,
--          bad_dates (kept rows whose InvoiceDate does not parse) and example_bad_date,
--          bad_customers (kept rows whose CustomerID is not a number) and example_bad_customer,
--          invoice_lines (distinct (customer, stock code, invoice) of the kept rows).
SELECT
    count(*) AS rows,
    count(*) FILTER (WHERE drop_reason = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE drop_reason = 'non_positive_quantity') AS non_positive_quantity,
    count(*) FILTER (WHERE drop_reason = 'no_customer') AS no_customer,
    count(*) FILTER (WHERE drop_reason = 'non_product') AS non_product,
    count(*) FILTER (WHERE drop_reason IS NULL) AS kept,
    count(*) FILTER (WHERE drop_reason IS NULL AND invoice_date IS NULL) AS bad_dates,
    min(invoice_date_text) FILTER (WHERE drop_reason IS NULL AND invoice_date IS NULL)
        AS example_bad_date,
    count(*) FILTER (WHERE drop_reason IS NULL AND customer_id IS NULL) AS bad_customers,
    min(customer_text) FILTER (WHERE drop_reason IS NULL AND customer_id IS NULL)
        AS example_bad_customer,
    count(DISTINCT (customer_id, stock_code, invoice)) FILTER (WHERE drop_reason IS NULL)
        AS invoice_lines
FROM retail_rows;
