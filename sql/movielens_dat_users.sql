-- MovieLens-1M users table.
-- Inputs:  $path = path of ml-1m/users.dat ("UserID::Gender::Age::Occupation::Zip-code", no
--          header, latin-1; Age is the bucket code 1, 18, 25, 35, 45, 50 or 56, Occupation a code
--          0-20 explained in the dataset's README).
-- Outputs: table users(user_id BIGINT, user_age INTEGER (the age bucket), user_gender VARCHAR,
--          user_occupation VARCHAR (the occupation code as text)), one row per user.
CREATE OR REPLACE TEMP TABLE users AS
SELECT user_id, user_age, user_gender, user_occupation
FROM read_csv(
    $path,
    delim = '::', header = false, quote = '', escape = '', auto_detect = false,
    encoding = 'latin-1',
    columns = {
        'user_id': 'BIGINT', 'user_gender': 'VARCHAR', 'user_age': 'INTEGER',
        'user_occupation': 'VARCHAR', 'zip_code': 'VARCHAR'
    }
)
ORDER BY user_id;
