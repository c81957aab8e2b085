-- hookrelay schema, version 7: the dead and the cancelled deliveries of
-- all endpoints, newest first by (created_at, id), for
-- GET /v1/deliveries?state=dead (or cancelled) without an endpoint or
-- tenant. Without it that list read the newest deliveries of every state
-- until it had a page of the few it wanted: all of them when there were
-- none. The index is partial, so the deliveries on their way to delivered
-- (most rows, and every row version the engine writes) add nothing to it;
-- state leads, so one state's list does not step over the other's rows.
CREATE INDEX deliveries_state_failed_idx ON {{schema}}.deliveries (state, created_at, id)
    WHERE state IN ('dead', 'cancelled');
