-- Canonical interactions: split-assigned rows with user and item features joined on.
-- Inputs:  assigned(user_id, item_id, weight, ts, split), users(user_id, user_*),
--          items(item_id, title, item_*).
-- Outputs: view canonical(user_id, item_id, weight, ts, user_* features, item_* features, split).
CREATE OR REPLACE VIEW canonical AS
SELECT
    s.user_id,
    s.item_id,
    s.weight,
    s.ts,
    u.* EXCLUDE (user_id),
    i.* EXCLUDE (item_id, title),
    s.split
FROM assigned AS s
LEFT JOIN users AS u ON u.user_id = s.user_id
LEFT JOIN items AS i ON i.item_id = s.item_id;
