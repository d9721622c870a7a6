-- H&M items from articles.csv: product name as the title, the catalogue's groupings as features.
-- Inputs:  $path = path of articles.csv (header with article_id, prod_name, product_type_name,
--          product_group_name, colour_group_name, department_name, index_name,
--          garment_group_name, ...; every column read as text so article_id keeps its zero).
-- Outputs: table items(item_id VARCHAR, title VARCHAR, item_product_type, item_product_group,
--          item_colour_group, item_department, item_index, item_garment_group: VARCHAR),
--          one row per article.
CREATE OR REPLACE TEMP TABLE items AS
SELECT
    trim(article_id) AS item_id,
    nullif(trim(prod_name), '') AS title,
    nullif(trim(product_type_name), '') AS item_product_type,
    nullif(trim(product_group_name), '') AS item_product_group,
    nullif(trim(colour_group_name), '') AS item_colour_group,
    nullif(trim(department_name), '') AS item_department,
    nullif(trim(index_name), '') AS item_index,
    nullif(trim(garment_group_name), '') AS item_garment_group
FROM read_csv($path, header = true, all_varchar = true)
QUALIFY row_number() OVER (PARTITION BY trim(article_id) ORDER BY prod_name) = 1
ORDER BY item_id;
