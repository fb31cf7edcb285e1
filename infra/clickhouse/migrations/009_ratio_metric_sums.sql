-- Ratio metrics (numerator ÷ denominator per user, delta method) need Σy, Σy² and Σxy beside
-- Σx and Σx²: the changes of them, per delta row, as on exp.aggregates (AggregateDelta's
-- sumY, sumSquaresY, sumXY). 0 for sum and conversion metrics and for rows written before
-- ratio metrics existed. A capped metric needs no column: its Σx and Σx² are of the capped
-- values already.
ALTER TABLE aggregate_deltas ADD COLUMN IF NOT EXISTS sum_y Float64 DEFAULT 0;
ALTER TABLE aggregate_deltas ADD COLUMN IF NOT EXISTS sum_squares_y Float64 DEFAULT 0;
ALTER TABLE aggregate_deltas ADD COLUMN IF NOT EXISTS sum_xy Float64 DEFAULT 0;

-- experiment_summary with the ratio sums and, where Σy is not 0, the ratio Σx / Σy and its
-- delta-method variance per user, (Σx² − 2RΣxy + R²Σy²) / ((n − 1)·ȳ²) (services/stats/
-- ratioOfMeans.ts); for a ratio metric `mean` and `variance` are those of the numerator.
CREATE OR REPLACE VIEW experiment_summary AS
  SELECT experiment_id, variant_id, metric, users, conflicts, sum_x, sum_x2, conversions, events,
         if(users > 0, sum_x / users, nan) AS mean,
         if(users > 1, (sum_x2 - users * pow(sum_x / users, 2)) / (users - 1), nan) AS variance,
         sum_y, sum_y2, sum_xy,
         if(users > 0 AND sum_y != 0, sum_x / sum_y, nan) AS ratio,
         if(users > 1 AND sum_y != 0,
            greatest(0, sum_x2 - 2 * ratio * sum_xy + ratio * ratio * sum_y2) / ((users - 1) * pow(sum_y / users, 2)), nan) AS ratio_variance
  FROM (
    SELECT d.experiment_id AS experiment_id, d.variant_id AS variant_id, d.metric AS metric,
           u.users AS users, sum(d.conflicts) AS conflicts, sum(d.sum) AS sum_x, sum(d.sum_squares) AS sum_x2,
           sum(d.conversions) AS conversions, sum(d.events) AS events,
           sum(d.sum_y) AS sum_y, sum(d.sum_squares_y) AS sum_y2, sum(d.sum_xy) AS sum_xy
    FROM aggregate_deltas AS d
    INNER JOIN (
      SELECT experiment_id, variant_id, sum(exposed_users) AS users FROM aggregate_deltas WHERE metric = '' GROUP BY experiment_id, variant_id
    ) AS u ON u.experiment_id = d.experiment_id AND u.variant_id = d.variant_id
    GROUP BY d.experiment_id, d.variant_id, d.metric, u.users
  );

-- concluded_results (007) with the ratio and its variance beside the mean.
CREATE OR REPLACE VIEW concluded_results AS
  SELECT c.experiment_id AS experiment_id, c.definition_version AS definition_version, c.decision AS decision,
         c.concluded_by AS concluded_by, c.concluded_at AS concluded_at,
         s.variant_id AS variant_id, s.metric AS metric, s.users AS users, s.mean AS mean, s.variance AS variance, s.conversions AS conversions,
         s.ratio AS ratio, s.ratio_variance AS ratio_variance
  FROM experiment_conclusions AS c
  INNER JOIN experiment_summary AS s ON s.experiment_id = c.experiment_id;
