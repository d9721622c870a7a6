-- Repeatable Bernoulli row sample of the interactions.
-- Inputs:  table/view interactions (raw_interactions, exact duplicates kept once); two literals
--          substituted by data/prepare.py:
--          __ROW_SAMPLING_PERCENT__ (a float in (0, 100)) and __SEED__ (an int >= 0).
--          DuckDB only accepts constants in a SAMPLE clause ("Only constants are supported in
--          sample clause currently"), so these two cannot be bound parameters; prepare.py
--          validates them as a Python float/int and renders them with repr()/str() only.
-- Outputs: table sampled, same columns as interactions.
CREATE OR REPLACE TABLE sampled AS
SELECT *
FROM interactions
USING SAMPLE __ROW_SAMPLING_PERCENT__ PERCENT (bernoulli, __SEED__);
