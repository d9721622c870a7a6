-- Canonical interactions of a user file: its rows already carry their features.
-- Inputs:  assigned(user_id, item_id, weight, ts, user_* features, item_* features, split).
-- Outputs: view canonical, same columns.
CREATE OR REPLACE VIEW canonical AS
SELECT *
FROM assigned;
