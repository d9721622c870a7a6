-- No row sampling: the sample is all raw interactions.
-- Inputs:  table/view raw_interactions.
-- Outputs: view sampled, same columns as raw_interactions.
CREATE OR REPLACE VIEW sampled AS
SELECT *
FROM raw_interactions;
