-- The DuckDB session time zone (TIMESTAMPTZ casts of zone-less text use it).
-- Inputs:  none.
-- Outputs: one row: the TimeZone setting.
SELECT current_setting('TimeZone') AS tz;
