-- Dialect of a delimited text interactions file, sniffed from its first rows (DuckDB's sample).
-- Inputs:  $path; $delim (the delimiter, found by data/files.py or given); $encoding ('utf-8',
--          'latin-1' or 'utf-16'); $compression ('none' or 'gzip').
-- Outputs: one row: quote, escape ('' when none), has_header, skip_rows, and columns (a list of
--          {name, type} structs as DuckDB would read them).
SELECT
    CASE Quote WHEN '(empty)' THEN '' ELSE Quote END AS quote,
    CASE Escape WHEN '(empty)' THEN '' ELSE Escape END AS escape,
    HasHeader AS has_header,
    SkipRows AS skip_rows,
    Columns AS columns
FROM sniff_csv($path, delim = $delim, encoding = $encoding, compression = $compression);
