-- Column names of the canonical interactions, in order.
-- Inputs:  view canonical.
-- Outputs: one row per column: column_name.
SELECT column_name
FROM (DESCRIBE canonical)
WHERE column_name <> 'split';
