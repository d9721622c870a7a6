-- The interactions as loaded (the source has no exact duplicate rows).
-- Inputs:  table/view raw_interactions.
-- Outputs: view interactions, same columns as raw_interactions.
CREATE OR REPLACE VIEW interactions AS
SELECT *
FROM raw_interactions;
