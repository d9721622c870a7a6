-- UCI Online Retail rows as text, from the parquet converted from "Online Retail.xlsx".
-- Inputs:  $path = parquet written by data.online_retail.xlsx_to_parquet (every column text).
-- Outputs: table retail_text(InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
--          CustomerID, Country: all VARCHAR), one row per sheet row after the header.
CREATE OR REPLACE TEMP TABLE retail_text AS
SELECT InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country
FROM read_parquet($path);
