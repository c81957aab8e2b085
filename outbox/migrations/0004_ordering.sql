-- hookrelay schema, version 4: in-order delivery per ordering key.
-- A delivery of an event with an ordering_key carries the key. For one
-- (endpoint, key) only the oldest unfinished delivery (the head) is due;
-- the ones behind it wait with next_attempt_at 'infinity' and the head's
-- outcome releases the next. ordering_on_dead says whether a dead head lets
-- the next go (skip) or blocks the key until it is retried or cancelled.
ALTER TABLE {{schema}}.deliveries ADD COLUMN ordering_key text;
ALTER TABLE {{schema}}.endpoints ADD COLUMN ordering_on_dead text NOT NULL DEFAULT 'skip'
    CONSTRAINT endpoints_ordering_on_dead CHECK (ordering_on_dead IN ('skip', 'block'));
CREATE INDEX deliveries_ordering_idx ON {{schema}}.deliveries (endpoint_id, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'in_flight', 'dead');
-- Keys travel in a request header: keep them short. NOT VALID leaves rows
-- written before this version as they are.
ALTER TABLE {{schema}}.outbox ADD CONSTRAINT outbox_ordering_key_length
    CHECK (ordering_key IS NULL OR length(ordering_key) BETWEEN 1 AND 255) NOT VALID;
