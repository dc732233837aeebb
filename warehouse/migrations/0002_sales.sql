-- The tables the monthly sales load replaces a month of. sales is
-- partitioned by month so that replacing a month costs the month, not the
-- table; the partitions (sales_YYYY_MM) are created by the load.
CREATE TABLE IF NOT EXISTS public.sales (
    idx       bigint  NOT NULL,
    value     numeric NOT NULL,
    date      date    NOT NULL,
    store_idx integer NOT NULL
) PARTITION BY RANGE (date);

CREATE TABLE IF NOT EXISTS public.monthly_sales (
    store_idx  integer NOT NULL,
    location   text    NOT NULL,
    sale_month date    NOT NULL,
    value      numeric NOT NULL,
    PRIMARY KEY (sale_month, store_idx)
);
