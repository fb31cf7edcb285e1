-- The audit record's reason code as its own column (STALE, BAD_SIGNATURE, HALT,
-- HALT_UNCHANGED, DEFINE, ...), so "which refusals, how many" is a GROUP BY, not text
-- parsing. Null for records written before the field existed (their reason starts with
-- the code). `expctl audit verify --source clickhouse` needs it: the record hash covers it.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS reason_code LowCardinality(Nullable(String));
