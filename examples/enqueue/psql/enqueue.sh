#!/bin/sh
# Enqueue a hookrelay webhook event with psql, in the same transaction as the
# business write that caused it (the transactional outbox): the event exists
# exactly when the signup commits, and hookrelay delivers it. Useful from
# shell scripts and cron jobs, and a template for any language: the whole
# hookrelay API is one INSERT.
#
# Environment:
#   DATABASE_URL      the application's PostgreSQL, where `hookrelay migrate`
#                     has created the hookrelay schema (HOOKRELAY_DATABASE_URL
#                     when unset, as after the README's tour)
#   HOOKRELAY_SCHEMA  the schema hookrelay uses (default "hookrelay")
#
# Usage: enqueue.sh [email] [tenant]   (tenant defaults to "acme", the README
# tour's tenant; "" is the default tenant of hookrelay itself)
set -eu

email=${1:-user$(date +%s)@example.com}
tenant=${2-acme}
dsn=${DATABASE_URL:-${HOOKRELAY_DATABASE_URL:-}}
if [ -z "$dsn" ]; then
	echo "enqueue: set DATABASE_URL to the application's PostgreSQL" >&2
	exit 2
fi

# Values travel as psql variables, quoted by psql itself: :'name' as a
# literal, :"name" as an identifier, so no input is spliced into the SQL.
# ON_ERROR_STOP makes any error end psql before COMMIT: the open transaction
# is rolled back and neither row is kept.
psql "$dsn" --no-psqlrc --quiet --tuples-only --no-align -v ON_ERROR_STOP=1 \
	-v email="$email" -v tenant="$tenant" -v schema="${HOOKRELAY_SCHEMA:-hookrelay}" <<'SQL'
-- The example's business table; your application has its own.
CREATE TABLE IF NOT EXISTS example_signups (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

BEGIN;
INSERT INTO example_signups (email) VALUES (:'email')
RETURNING id AS signup_id, created_at AS signup_at \gset
-- The whole hookrelay API: one INSERT in your transaction.
INSERT INTO :"schema".outbox (event_type, tenant, payload)
VALUES ('signup.created', :'tenant',
        jsonb_build_object('user_id', :'signup_id', 'email', :'email', 'signed_up_at', :'signup_at'))
-- The webhook-id receivers see: "msg_" + the uid without dashes.
RETURNING 'msg_' || replace(uid::text, '-', '') AS webhook_id \gset
COMMIT;
SELECT format('signup %s committed; enqueued signup.created for tenant "%s" as %s',
              :'signup_id', :'tenant', :'webhook_id');
SQL
