-- hookrelay schema, version 2.
-- attempts_started_idx served no query (retention deletes attempts by
-- delivery, the API lists them by delivery) and cost an index insertion on
-- every attempt recorded.
DROP INDEX {{schema}}.attempts_started_idx;
