-- MovieLens-100k users table.
-- Inputs:  $path = path of ml-100k/u.user ("id|age|gender|occupation|zip", no header).
-- Outputs: table users(user_id BIGINT, user_age INTEGER, user_gender VARCHAR,
--          user_occupation VARCHAR), one row per user.
CREATE OR REPLACE TABLE users AS
SELECT user_id, user_age, user_gender, user_occupation
FROM read_csv(
    $path,
    delim = '|', header = false, quote = '', escape = '',
    columns = {
        'user_id': 'BIGINT', 'user_age': 'INTEGER', 'user_gender': 'VARCHAR',
        'user_occupation': 'VARCHAR', 'zip_code': 'VARCHAR'
    }
)
ORDER BY user_id;
