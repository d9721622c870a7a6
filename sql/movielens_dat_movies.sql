-- MovieLens-1M / 10M items: title, genres and the year in the title.
-- Each line is read whole and split with a regular expression, because a title may itself hold
-- "::" (the file has no quoting): the id is before the first "::", the genres after the last.
-- Inputs:  $path = path of movies.dat ("MovieID::Title (Year)::Genre1|Genre2", no header);
--          $encoding = 'utf-8' or 'latin-1' (ML-1M's file is latin-1).
-- Outputs: table items(item_id BIGINT, title VARCHAR, item_genres VARCHAR[] (empty list for
--          "(no genres listed)"), item_year INTEGER (the "(1995)" ending the title, else NULL)),
--          one row per movie.
CREATE OR REPLACE TEMP TABLE items AS
WITH parts AS (
    SELECT regexp_extract(
        rtrim(line, chr(13)), '^([^:]*)::(.*)::([^:]*)$', ['item_id', 'title', 'genres']
    ) AS f
    FROM read_csv(
        $path,
        delim = chr(1), header = false, quote = '', escape = '', auto_detect = false,
        encoding = $encoding, columns = {'line': 'VARCHAR'}
    )
    WHERE trim(line) <> ''
)
SELECT
    CAST(f.item_id AS BIGINT) AS item_id,
    f.title AS title,
    list_filter(
        string_split(f.genres, '|'), lambda g: g <> '' AND g <> '(no genres listed)'
    ) AS item_genres,
    TRY_CAST(nullif(regexp_extract(trim(f.title), '\((\d{4})\)$', 1), '') AS INTEGER)
        AS item_year
FROM parts
ORDER BY item_id;
