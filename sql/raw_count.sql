-- Row count of the source before sampling.
-- Inputs:  table/view raw_interactions.
-- Outputs: one row: n_rows.
SELECT count(*) AS n_rows
FROM raw_interactions;
