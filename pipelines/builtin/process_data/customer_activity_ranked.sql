-- Each client's activities numbered 1, 2, 3... from the newest valid_from;
-- row_number, unlike rank, never repeats.
SELECT idx, valid_from, valid_to, scd_a, scd_b,
       row_number() OVER (PARTITION BY idx ORDER BY valid_from DESC) AS activity_rank
FROM public.customer_activity
