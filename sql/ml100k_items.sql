-- MovieLens-100k items table with genre names and release year.
-- Inputs:  $items_path  = path of ml-100k/u.item (latin-1, "id|title|release date|video release
--                         date|IMDb URL|19 genre flags", no header);
--          $genres_path = path of ml-100k/u.genre ("name|index", no header).
-- Outputs: table items(item_id BIGINT, title VARCHAR, item_genres VARCHAR[] (genre names in
--          u.genre order, empty list when no flag is set), item_year INTEGER (year of the release
--          date, NULL when missing)), one row per item.
CREATE OR REPLACE TABLE items AS
WITH raw AS (
    SELECT *
    FROM read_csv(
        $items_path,
        delim = '|', header = false, quote = '', escape = '', encoding = 'latin-1',
        columns = {
            'item_id': 'BIGINT', 'title': 'VARCHAR', 'release_date': 'VARCHAR',
            'video_release_date': 'VARCHAR', 'imdb_url': 'VARCHAR',
            'g0': 'INTEGER', 'g1': 'INTEGER', 'g2': 'INTEGER', 'g3': 'INTEGER',
            'g4': 'INTEGER', 'g5': 'INTEGER', 'g6': 'INTEGER', 'g7': 'INTEGER',
            'g8': 'INTEGER', 'g9': 'INTEGER', 'g10': 'INTEGER', 'g11': 'INTEGER',
            'g12': 'INTEGER', 'g13': 'INTEGER', 'g14': 'INTEGER', 'g15': 'INTEGER',
            'g16': 'INTEGER', 'g17': 'INTEGER', 'g18': 'INTEGER'
        }
    )
),
genre_names AS (
    SELECT genre_index, genre_name
    FROM read_csv(
        $genres_path,
        delim = '|', header = false, quote = '', escape = '',
        columns = {'genre_name': 'VARCHAR', 'genre_index': 'INTEGER'}
    )
    WHERE genre_name IS NOT NULL
),
flags AS (
    UNPIVOT (SELECT item_id, COLUMNS('^g[0-9]+$') FROM raw)
    ON COLUMNS('^g[0-9]+$') INTO NAME flag_column VALUE flag
),
item_genres AS (
    SELECT f.item_id, list(g.genre_name ORDER BY g.genre_index) AS item_genres
    FROM flags AS f
    JOIN genre_names AS g ON g.genre_index = CAST(substr(f.flag_column, 2) AS INTEGER)
    WHERE f.flag = 1
    GROUP BY f.item_id
)
SELECT
    r.item_id,
    r.title,
    coalesce(ig.item_genres, []::VARCHAR[]) AS item_genres,
    CAST(year(try_strptime(r.release_date, '%d-%b-%Y')) AS INTEGER) AS item_year
FROM raw AS r
LEFT JOIN item_genres AS ig ON ig.item_id = r.item_id
ORDER BY r.item_id;
