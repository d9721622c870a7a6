-- The interactions with exact duplicate rows (every column equal) kept once, in a fixed order so
-- that the seeded row sample that follows stays repeatable. Run only when duplicates exist.
-- Inputs:  table/view raw_interactions.
-- Outputs: table interactions, same columns as raw_interactions.
CREATE OR REPLACE TABLE interactions AS
SELECT DISTINCT *
FROM raw_interactions
ORDER BY ALL;
