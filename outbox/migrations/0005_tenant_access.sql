-- hookrelay schema, version 5: tenant tokens, the event-type catalog, test
-- sends and replays in the delivery log, and the indexes behind the
-- filtered history lists and endpoint health.

-- Tenant API tokens. Only a SHA-256 of the value is kept: the value
-- ("hrt_" + 256 random bits) is shown once, when the token is created.
-- Every request looks its token up here, so a revocation or an expiry
-- holds on every replica at once.
CREATE TABLE {{schema}}.tokens (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant      text        NOT NULL,
    token_hash  bytea       NOT NULL CONSTRAINT tokens_hash_unique UNIQUE
                            CONSTRAINT tokens_hash_length CHECK (length(token_hash) = 32),
    read_only   boolean     NOT NULL DEFAULT false,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX tokens_tenant_idx ON {{schema}}.tokens (tenant, created_at, id);

-- The event-type catalog: what endpoints may subscribe to (once it is not
-- empty), with an example the Test button sends and an optional JSON
-- Schema that outbox.Enqueue and POST /v1/events check payloads against.
CREATE TABLE {{schema}}.event_types (
    name        text        PRIMARY KEY
                            CONSTRAINT event_types_name_format CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    description text        NOT NULL DEFAULT '',
    example     jsonb,
    schema      jsonb,
    deprecated  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A test send ("Test" button) is recorded as an event already fanned out
-- to its one endpoint, with its delivery and attempt: test marks it.
ALTER TABLE {{schema}}.outbox ADD COLUMN test boolean NOT NULL DEFAULT false;

-- A replay starts a new attempt series on the existing delivery (so it
-- keeps its place in its ordering key): replays counts them, replayed_at
-- is when the last one started; the attempts before it stay.
ALTER TABLE {{schema}}.deliveries ADD COLUMN replays integer NOT NULL DEFAULT 0,
                                  ADD COLUMN replayed_at timestamptz;

-- History lists, newest first by (created_at, id): per endpoint (a
-- tenant's list merges its endpoints' lists), overall, and the failed
-- ones, which are few (partial indexes cost nothing for the rest). The
-- endpoint index replaces (endpoint_id, id), which it covers.
DROP INDEX {{schema}}.deliveries_endpoint_idx;
CREATE INDEX deliveries_endpoint_created_idx ON {{schema}}.deliveries (endpoint_id, created_at, id);
CREATE INDEX deliveries_created_idx ON {{schema}}.deliveries (created_at, id);
CREATE INDEX deliveries_failed_idx ON {{schema}}.deliveries (endpoint_id, created_at, id)
    WHERE state IN ('dead', 'cancelled');

-- Attempt lists and endpoint health (last hour and day, last error).
CREATE INDEX attempts_endpoint_idx ON {{schema}}.attempts (endpoint_id, started_at, id);
CREATE INDEX attempts_failed_idx ON {{schema}}.attempts (endpoint_id, started_at, id)
    WHERE outcome <> 'delivered';
