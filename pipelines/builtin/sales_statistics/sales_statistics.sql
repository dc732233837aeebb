-- The average is exact (numeric), rounded to four decimals, more than the
-- one decimal of the values.
SELECT s.store_idx, st.location, date_trunc('month', s.date)::date AS sale_month,
       round(avg(s.value), 4) AS avg_value, count(*) AS sales_count
FROM public.sales s JOIN public.stores st ON st.idx = s.store_idx
GROUP BY 1, 2, 3
