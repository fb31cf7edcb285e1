-- Views for the analysts' usual questions. They read the tables above; each is filtered by
-- experiment_id first, which the tables are sorted by.

-- Per-variant results per day (event time): new exposures (metric '') and, per metric, the
-- attributed events and the sum of their values, from the per-minute trend table.
CREATE VIEW IF NOT EXISTS variant_daily_results AS
  SELECT experiment_id, variant_id, metric, toDate(minute) AS day, sum(count) AS events, sum(sum) AS value_sum
  FROM aggregate_minutes
  GROUP BY experiment_id, variant_id, metric, day;

-- One row per experiment, variant and metric with the streamed user-level statistics: users,
-- Σx, Σx², mean and sample variance (metric '' holds exposures and conflicts).
CREATE VIEW IF NOT EXISTS experiment_summary AS
  SELECT experiment_id, variant_id, metric, users, conflicts, sum_x, sum_x2, conversions, events,
         if(users > 0, sum_x / users, nan) AS mean,
         if(users > 1, (sum_x2 - users * pow(sum_x / users, 2)) / (users - 1), nan) AS variance
  FROM (
    SELECT d.experiment_id AS experiment_id, d.variant_id AS variant_id, d.metric AS metric,
           u.users AS users, sum(d.conflicts) AS conflicts, sum(d.sum) AS sum_x, sum(d.sum_squares) AS sum_x2,
           sum(d.conversions) AS conversions, sum(d.events) AS events
    FROM aggregate_deltas AS d
    INNER JOIN (
      SELECT experiment_id, variant_id, sum(exposed_users) AS users FROM aggregate_deltas WHERE metric = '' GROUP BY experiment_id, variant_id
    ) AS u ON u.experiment_id = d.experiment_id AND u.variant_id = d.variant_id
    GROUP BY d.experiment_id, d.variant_id, d.metric, u.users
  );

-- Every HALT with who issued it, why, and the evidence it carried.
CREATE VIEW IF NOT EXISTS halts AS
  SELECT experiment_id, issued_at, issuer, reason, evidence, command_id
  FROM control_commands
  WHERE action = 'HALT';
