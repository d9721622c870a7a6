-- MovieLens-20M / 25M items: title, genres and the year in the title.
-- Inputs:  $path = path of movies.csv (header "movieId,title,genres", UTF-8, titles with commas
--          double-quoted, genres "Genre1|Genre2" or "(no genres listed)").
-- Outputs: table items(item_id BIGINT, title VARCHAR, item_genres VARCHAR[], item_year INTEGER
--          (the "(1995)" ending the title, else NULL)), one row per movie.
CREATE OR REPLACE TEMP TABLE items AS
SELECT
    CAST(movieId AS BIGINT) AS item_id,
    CAST(title AS VARCHAR) AS title,
    list_filter(
        string_split(CAST(genres AS VARCHAR), '|'),
        lambda g: g <> '' AND g <> '(no genres listed)'
    ) AS item_genres,
    TRY_CAST(nullif(regexp_extract(trim(title), '\((\d{4})\)$', 1), '') AS INTEGER)
        AS item_year
FROM read_csv(
    $path,
    header = true, delim = ',', quote = '"', escape = '"',
    types = {'movieId': 'BIGINT', 'title': 'VARCHAR', 'genres': 'VARCHAR'}
)
ORDER BY item_id;
