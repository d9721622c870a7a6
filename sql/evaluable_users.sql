-- Evaluable users per evaluation window, as the evaluator counts them (reclab/evaluation.py):
-- a user in train with at least one window item that is not already among their train items.
-- Inputs:  table assigned(user_id, item_id, split) (from split_time_window.sql or
--          split_random_per_user.sql).
-- Outputs: one row per evaluation window with rows: split ('valid' | 'test'), window_users
--          (distinct users with rows in the window), evaluable_users.
WITH train_pairs AS (
    SELECT DISTINCT user_id, item_id
    FROM assigned
    WHERE split = 'train'
),
train_users AS (
    SELECT DISTINCT user_id
    FROM train_pairs
),
window_rows AS (
    SELECT DISTINCT w.split, w.user_id, w.item_id, (t.user_id IS NOT NULL) AS warm
    FROM assigned AS w
    LEFT JOIN train_users AS t ON t.user_id = w.user_id
    WHERE w.split IN ('valid', 'test')
)
SELECT
    r.split,
    count(DISTINCT r.user_id) AS window_users,
    count(DISTINCT r.user_id) FILTER (WHERE r.warm AND p.user_id IS NULL) AS evaluable_users
FROM window_rows AS r
LEFT JOIN train_pairs AS p ON p.user_id = r.user_id AND p.item_id = r.item_id
GROUP BY r.split;
