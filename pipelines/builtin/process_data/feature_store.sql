-- Each client's latest activity: the row with the newest valid_from, which
-- (idx, valid_from) being unique makes deterministic.
SELECT p.idx, p.attr_a, p.attr_b, a.scd_a, a.scd_b, l.label
FROM public.customer_profiles p
JOIN (SELECT DISTINCT ON (idx) idx, scd_a, scd_b
      FROM public.customer_activity ORDER BY idx, valid_from DESC) a ON a.idx = p.idx
JOIN public.labels l ON l.idx = p.idx
