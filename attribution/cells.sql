-- Collapse customers into cells of sufficient statistics. The one heavy data step.
-- Portable SQL (DuckDB and Spark SQL): CTEs, CASE, SUM, COUNT, LN, CAST, LEFT JOIN only; run by
-- both engines (attribution/lake.py: Spark in ANSI mode with double-quoted identifiers).
-- Money is summed as DECIMAL (exact, to 1e-6; logs to 1e-12): a float sum depends on the order
-- the engine's threads add partial sums in, so the same store could give cells differing in the
-- last bits, and a readout of the same data with the same seed different numbers.
-- The brace placeholders are filled with schema-checked, quoted column names (never user text),
-- the hurdle statistics of each amount (attribution.cells.hurdle_sql, shared with the g-formula's
-- cells) and the optional pre-period blocks at the end of this file. Values are bound parameters:
--   $experiment_id (NULL: every customer), $start and $horizon (first days of months), $from
--   (the first month read: $start, or the pre-period's first month with the pre-period blocks).
WITH population AS (
    SELECT c.customer_id{group_select}
    FROM customers c
    LEFT JOIN assignments a
      ON a.customer_id = c.customer_id AND a.experiment_id = $experiment_id
    WHERE $experiment_id IS NULL OR a.experiment_id IS NOT NULL
),
-- One pass over the outcomes reads the window [$start, $horizon] and, when the pre-period
-- blocks are in, the pre-period months before it (from $from).
per_customer AS (
    SELECT o.customer_id,
           SUM(CASE WHEN o.period >= $start THEN CAST(o.revenue AS DECIMAL(18, 6)) END)
                                                                AS revenue,
           SUM(CASE WHEN o.period >= $start THEN CAST(o.cost_to_serve AS DECIMAL(18, 6)) END)
                                                                AS cost_to_serve,
           MAX(CASE WHEN o.period = $horizon THEN 1 ELSE 0 END) AS seen_at_horizon,
           MAX(CASE WHEN o.period = $horizon AND o.active THEN 1 ELSE 0 END) AS active_at_horizon{pre_sum}
    FROM outcomes o
    WHERE o.period >= $from AND o.period <= $horizon
      AND o.customer_id IN (SELECT customer_id FROM population)
    GROUP BY o.customer_id
),{pre_cte}
joined AS (
    SELECT p.*,
           COALESCE(pc.revenue, 0)           AS revenue_total,
           COALESCE(pc.cost_to_serve, 0)     AS cost_total,
           COALESCE(pc.seen_at_horizon, 0)   AS seen,
           COALESCE(pc.active_at_horizon, 0) AS active,
           COALESCE(pc.active_at_horizon, 0) AS retained{pre_select}
    FROM population p
    LEFT JOIN per_customer pc ON pc.customer_id = p.customer_id{pre_join}
)
SELECT {group_select_plain}
       COUNT(*)                                                        AS n,
       SUM(active)                                                     AS n_active,
       SUM(1 - seen)                                                   AS n_missing,
       {revenue_stats},
       {cost_stats}
FROM joined
{group_by}
{order_by}

-- block: pre_sum
,
           SUM(CASE WHEN o.period < $start THEN CAST(o.revenue AS DECIMAL(18, 6)) END)
                                                                AS pre_revenue
-- block: pre_cte
pre_revenue AS (SELECT customer_id, pre_revenue FROM per_customer),
-- block: pre_band
-- Pre-period spend band (the Bayesian analogue of CUPED): band 0 = no revenue in the pre-period
-- months before $start, bands 1..$pre_bands - 1 = equal-count tiles of positive revenue.
-- It needs a pre_revenue(customer_id, pre_revenue) CTE before it: the cells' one pass above, or
-- the pre_revenue_scan block for a query without that pass (experiments.history).
pre_band AS (
    SELECT p.customer_id,
           CAST(CASE WHEN COALESCE(r.pre_revenue, 0) > 0
                THEN NTILE($pre_bands - 1) OVER (
                         PARTITION BY CASE WHEN COALESCE(r.pre_revenue, 0) > 0 THEN 1 ELSE 0 END
                         ORDER BY r.pre_revenue, p.customer_id)
                ELSE 0 END AS BIGINT) AS pre_band
    FROM population p
    LEFT JOIN pre_revenue r ON r.customer_id = p.customer_id
),
-- block: pre_revenue_scan
pre_revenue AS (
    SELECT o.customer_id, SUM(CAST(o.revenue AS DECIMAL(18, 6))) AS pre_revenue
    FROM outcomes o
    WHERE o.period >= $pre_start AND o.period < $start
      AND o.customer_id IN (SELECT customer_id FROM population)
    GROUP BY o.customer_id
),
-- block: pre_join
    LEFT JOIN pre_band pb ON pb.customer_id = p.customer_id
-- block: pre_select
,
           pb.pre_band AS pre_band
