-- No row sampling: the sample is all interactions.
-- Inputs:  table/view interactions (raw_interactions, exact duplicates kept once).
-- Outputs: view sampled, same columns as interactions.
CREATE OR REPLACE VIEW sampled AS
SELECT *
FROM interactions;
