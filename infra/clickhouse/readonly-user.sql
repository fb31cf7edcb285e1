-- The read-only user `expctl query` connects as on a ClickHouse server
-- (CLICKHOUSE_QUERY_USER=expstream_analyst, CLICKHOUSE_QUERY_PASSWORD).
--
-- Placeholders, replaced before running (run as a user with access management):
--   __PIPELINE_DATABASE__  the pipeline's database: CLICKHOUSE_DATABASE, default expstream
--   __ANALYST_PASSWORD__   the user's password (the server keeps only its SHA-256)
--
--   sed -e 's/__PIPELINE_DATABASE__/expstream/g' -e "s/__ANALYST_PASSWORD__/$ANALYST_PASSWORD/g" \
--     infra/clickhouse/readonly-user.sql | clickhouse-client --multiquery
--
-- readonly = 1: reads only; no INSERT, DDL, SYSTEM, KILL, GRANT; no SET and no SETTINGS clause,
-- except for the three limits marked CHANGEABLE_IN_READONLY, which a query may move only
-- between their MIN and MAX (expctl query --max-rows, --timeout, --max-memory); 0 ("no limit")
-- is below every MIN. CHANGEABLE_IN_READONLY needs this in the server's config.xml, or the
-- server refuses the profile (NOT_IMPLEMENTED):
--   <access_control_improvements><settings_constraints_replace_previous>true</settings_constraints_replace_previous></access_control_improvements>
--
-- Grants: SELECT on the pipeline's database and nothing else: no FILE, URL, S3, REMOTE, MYSQL,
-- ... sources (so no table function reaches outside), no dictGet, no other database, no
-- system table beyond those every user may read. expctl query also checks each statement on
-- the engine's parse before sending it (services/cli/query/).
--
-- The values must agree with services/cli/query/analystSettings.ts, which expctl query sends
-- with every query; test/integration/clickhouse-readonly-user.test.ts checks that they do.

CREATE SETTINGS PROFILE IF NOT EXISTS expstream_analyst SETTINGS
  readonly = 1 CONST,
  max_result_rows = 10000 MIN 1 MAX 1000000 CHANGEABLE_IN_READONLY,
  max_result_bytes = 268435456 CONST,
  result_overflow_mode = 'throw' CONST,
  max_execution_time = 30 MIN 1 MAX 600 CHANGEABLE_IN_READONLY,
  timeout_overflow_mode = 'throw' CONST,
  max_memory_usage = 1073741824 MIN 1048576 MAX 4294967296 CHANGEABLE_IN_READONLY,
  max_bytes_ratio_before_external_group_by = 0 CONST,
  max_bytes_ratio_before_external_sort = 0 CONST,
  max_bytes_ratio_before_external_join = 0 CONST,
  allow_introspection_functions = 0 CONST,
  output_format_json_quote_64bit_integers = 1 CONST;

CREATE USER IF NOT EXISTS expstream_analyst
  IDENTIFIED WITH sha256_password BY '__ANALYST_PASSWORD__'
  DEFAULT DATABASE __PIPELINE_DATABASE__
  SETTINGS PROFILE 'expstream_analyst';

GRANT SELECT ON __PIPELINE_DATABASE__.* TO expstream_analyst;
