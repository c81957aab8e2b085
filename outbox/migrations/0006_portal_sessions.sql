-- hookrelay schema, version 6: customer portal sessions.
-- POST /v1/portal/sessions makes a row holding the SHA-256 of a one-time
-- login code; opening the portal link redeems the code once (code_used_at)
-- and stores the SHA-256 of the session token the cookie carries. Neither
-- value is kept, so a copy of the table opens no session. Every replica
-- reads the same rows, so a link works whichever replica serves it.
CREATE TABLE {{schema}}.portal_sessions (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant          text        NOT NULL,
    read_only       boolean     NOT NULL DEFAULT false,
    return_url      text        NOT NULL DEFAULT '',
    code_hash       bytea       NOT NULL CONSTRAINT portal_sessions_code_unique UNIQUE
                                CONSTRAINT portal_sessions_code_length CHECK (length(code_hash) = 32),
    code_expires_at timestamptz NOT NULL,
    code_used_at    timestamptz,
    session_hash    bytea       CONSTRAINT portal_sessions_session_unique UNIQUE
                                CONSTRAINT portal_sessions_session_length CHECK (length(session_hash) = 32),
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Expired sessions are removed a batch at a time as new ones are made.
CREATE INDEX portal_sessions_expires_idx ON {{schema}}.portal_sessions (expires_at);
