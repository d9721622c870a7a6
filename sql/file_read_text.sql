-- A delimited text interactions file with its dialect fixed (column types sniffed by DuckDB).
-- Inputs:  $path; $delim, $quote, $escape, $header, $skip, $encoding, $compression as found by
--          file_sniff_text.sql in the flow's start step, so every later read sees the same
--          columns.
-- Outputs: rows of the file; columns named from its header, or column0, column1, ... without.
SELECT *
FROM read_csv(
    $path,
    delim = $delim, quote = $quote, escape = $escape, header = $header, skip = $skip,
    encoding = $encoding, compression = $compression
);
