-- last.fm-360K users: every user with interactions, with their profile where it has one.
-- Inputs:  table raw_interactions; $path = path of usersha1-profile.tsv ("user sha1<TAB>gender
--          (m|f|empty)<TAB>age (int|empty)<TAB>country<TAB>signup date", no header, UTF-8; lines
--          that do not parse are skipped).
-- Outputs: table users(user_id VARCHAR, user_gender VARCHAR (m, f or NULL), user_age INTEGER
--          (NULL when missing or outside 1-100), user_country VARCHAR), one row per user.
CREATE OR REPLACE TEMP TABLE users AS
WITH profile AS (
    SELECT
        trim(user_sha1) AS user_id,
        nullif(lower(trim(gender)), '') AS user_gender,
        TRY_CAST(trim(age) AS INTEGER) AS age,
        nullif(trim(country), '') AS user_country
    FROM read_csv(
        $path,
        delim = '\t', header = false, quote = '', escape = '', auto_detect = false,
        ignore_errors = true,
        columns = {
            'user_sha1': 'VARCHAR', 'gender': 'VARCHAR', 'age': 'VARCHAR', 'country': 'VARCHAR',
            'signup': 'VARCHAR'
        }
    )
    QUALIFY row_number() OVER (
        PARTITION BY trim(user_sha1) ORDER BY country NULLS LAST, gender NULLS LAST, age NULLS LAST
    ) = 1
)
SELECT
    u.user_id,
    p.user_gender,
    CASE WHEN p.age BETWEEN 1 AND 100 THEN p.age END AS user_age,
    p.user_country
FROM (SELECT DISTINCT user_id FROM raw_interactions) AS u
LEFT JOIN profile AS p ON p.user_id = u.user_id
ORDER BY u.user_id;
