"""Enqueue a hookrelay webhook event from Python, in the same transaction as
the business write that caused it (the transactional outbox): the event
exists exactly when the signup commits, and hookrelay delivers it.

Requires psycopg 3 (pip install "psycopg[binary]").

Environment:
    DATABASE_URL      the application's PostgreSQL, where `hookrelay migrate`
                      has created the hookrelay schema (HOOKRELAY_DATABASE_URL
                      when unset, as after the README's tour)
    HOOKRELAY_SCHEMA  the schema hookrelay uses (default "hookrelay")

Usage: python3 enqueue.py [email] [tenant]   (tenant defaults to "acme", the
README tour's tenant; "" is the default tenant of hookrelay itself)
"""

import os
import sys
import time

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb


def main():
    email = sys.argv[1] if len(sys.argv) > 1 else f"user{int(time.time())}@example.com"
    tenant = sys.argv[2] if len(sys.argv) > 2 else "acme"
    schema = os.environ.get("HOOKRELAY_SCHEMA") or "hookrelay"

    # A schema name is an identifier, never a bind parameter: compose it.
    insert_event = sql.SQL(
        "INSERT INTO {}.outbox (event_type, tenant, payload) VALUES (%s, %s, %s) RETURNING uid"
    ).format(sql.Identifier(schema))

    dsn = os.environ.get("DATABASE_URL") or os.environ.get("HOOKRELAY_DATABASE_URL")
    if not dsn:
        sys.exit("enqueue: set DATABASE_URL to the application's PostgreSQL")

    with psycopg.connect(dsn) as conn:
        # The example's business table; your application has its own.
        conn.execute(
            """CREATE TABLE IF NOT EXISTS example_signups (
                id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                email      text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        conn.commit()

        # One transaction: both rows commit together or neither does (an
        # exception inside the block rolls back).
        with conn.transaction():
            signup_id, created_at = conn.execute(
                "INSERT INTO example_signups (email) VALUES (%s) RETURNING id, created_at",
                (email,),
            ).fetchone()
            # The whole hookrelay API: one INSERT in your transaction.
            (uid,) = conn.execute(
                insert_event,
                (
                    "signup.created",
                    tenant,
                    Jsonb({"user_id": str(signup_id), "email": email, "signed_up_at": created_at.isoformat()}),
                ),
            ).fetchone()

    # The webhook-id receivers see: "msg_" + the uid without dashes.
    print(f'signup {signup_id} committed; enqueued signup.created for tenant "{tenant}" as msg_{uid.hex}')


if __name__ == "__main__":
    try:
        main()
    except psycopg.Error as err:
        sys.exit(f"enqueue: {err!r}")
