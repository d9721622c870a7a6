-- last.fm-360K play counts, staged as published (one row per line that parses).
-- Read with ignore_errors: a line with the wrong number of TAB-separated fields or invalid UTF-8
-- is skipped and recorded in table lastfm_rejects (counted in the split notes). No quoting:
-- artist names hold quotes and other odd characters as they are.
-- Inputs:  $path = path of usersha1-artmbid-artname-plays.tsv ("user sha1<TAB>artist MBID<TAB>
--          artist name<TAB>plays", no header, UTF-8; the MBID is empty for some artists).
-- Outputs: table lastfm_rows(user_id VARCHAR (NULL when empty), item_id VARCHAR (the MBID, NULL
--          when empty), artist_name VARCHAR, plays DOUBLE (NULL when not a number), bad_plays
--          VARCHAR (the text of plays when it is not a number, else NULL));
--          tables lastfm_rejects / lastfm_reject_scans (DuckDB's rejects of this scan).
-- A TEMP table: held in memory and spilled to the temp directory when needed, not written to
-- the scratch database file (4x faster for 30M rows with long string ids).
CREATE OR REPLACE TEMP TABLE lastfm_rows AS
SELECT
    nullif(trim(user_sha1), '') AS user_id,
    nullif(trim(artist_mbid), '') AS item_id,
    artist_name,
    TRY_CAST(plays AS DOUBLE) AS plays,
    CASE WHEN TRY_CAST(plays AS DOUBLE) IS NULL THEN coalesce(plays, '') END AS bad_plays
FROM read_csv(
    $path,
    delim = '\t', header = false, quote = '', escape = '', auto_detect = false,
    ignore_errors = true, store_rejects = true,
    rejects_table = 'lastfm_rejects', rejects_scan = 'lastfm_reject_scans',
    columns = {
        'user_sha1': 'VARCHAR', 'artist_mbid': 'VARCHAR', 'artist_name': 'VARCHAR',
        'plays': 'VARCHAR'
    }
);
