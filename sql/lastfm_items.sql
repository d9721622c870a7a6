-- last.fm-360K items: one row per artist MBID with plays, titled by its most common name.
-- Inputs:  table lastfm_rows (lastfm_plays.sql).
-- Outputs: table items(item_id VARCHAR (artist MBID), title VARCHAR (the name on most rows; ties
--          by the smallest name)), one row per artist.
CREATE OR REPLACE TEMP TABLE items AS
SELECT item_id, title
FROM (
    SELECT item_id, artist_name AS title, count(*) AS n
    FROM lastfm_rows
    WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND plays > 0
    GROUP BY item_id, artist_name
)
QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY n DESC, title NULLS LAST) = 1
ORDER BY item_id;
