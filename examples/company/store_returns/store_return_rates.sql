SELECT s.store_idx, s.location, s.sale_month AS month,
       s.value AS sales, r.amount AS returned,
       round(r.amount / nullif(s.value, 0), 4) AS return_rate
FROM public.monthly_sales s
JOIN public.monthly_returns r ON r.store_idx = s.store_idx AND r.return_month = s.sale_month
