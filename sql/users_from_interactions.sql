-- Users table of a dataset without user features: one row per user with interactions.
-- Inputs:  table raw_interactions(user_id, ...).
-- Outputs: table users(user_id), one row per user.
CREATE OR REPLACE TEMP TABLE users AS
SELECT DISTINCT user_id
FROM raw_interactions
ORDER BY user_id;
