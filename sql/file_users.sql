-- Users table of a user file: each user's features from their latest interaction.
-- Inputs:  view raw_interactions (from file_raw_interactions.sql), all rows (before sampling).
-- Outputs: table users(user_id, user_* features), one row per user.
CREATE OR REPLACE TABLE users AS
SELECT DISTINCT ON (user_id) COLUMNS('^user_')
FROM raw_interactions
ORDER BY user_id, ts DESC NULLS LAST;
