-- UCI Online Retail rows as text, from a CSV export of the sheet (delimiter and quoting sniffed).
-- Inputs:  $path = CSV with a header naming InvoiceNo, StockCode, Description, Quantity,
--          InvoiceDate, UnitPrice, CustomerID, Country; $encoding = 'utf-8' or 'latin-1'.
-- Outputs: table retail_text(the eight columns, all VARCHAR), one row per data line.
CREATE OR REPLACE TEMP TABLE retail_text AS
SELECT InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country
FROM read_csv($path, header = true, all_varchar = true, encoding = $encoding);
