-- Session settings of the scratch database: no progress bar in pipeline logs.
-- Inputs:  none.
-- Outputs: none (changes the session).
SET enable_progress_bar = false;
