-- API keys of the HTTP admin API. A key reads `tk_<prefix>_<secret>`: the
-- prefix finds the row, sha256(secret) is compared in constant time with
-- `secret_hash`. The plaintext is shown once, at creation, and never stored.
CREATE TABLE tasker.api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    prefix       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    permissions  text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
