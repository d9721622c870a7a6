-- What the last.fm-360K loader keeps and drops, for the split notes.
-- Inputs:  tables lastfm_rows (lastfm_plays.sql) and lastfm_rejects.
-- Outputs: one row: lines (parsed), malformed (lines skipped by the reader), no_user,
--          missing_mbid, bad_plays (plays not a number), non_positive_plays, kept, example_bad_plays.
SELECT
    count(*) AS lines,
    (SELECT count(DISTINCT (scan_id, line)) FROM lastfm_rejects) AS malformed,
    count(*) FILTER (WHERE user_id IS NULL) AS no_user,
    count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NULL) AS missing_mbid,
    count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND plays IS NULL)
        AS bad_plays,
    count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND plays <= 0)
        AS non_positive_plays,
    count(*) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND plays > 0) AS kept,
    min(bad_plays) FILTER (WHERE user_id IS NOT NULL AND item_id IS NOT NULL) AS example_bad_plays
FROM lastfm_rows;
