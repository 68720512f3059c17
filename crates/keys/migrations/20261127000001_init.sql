-- Portable SQL (SQLite and PostgreSQL): times are unix milliseconds (BIGINT), booleans are 0/1
-- (BIGINT), lists and objects are JSON text. IF NOT EXISTS keeps a racing second instance harmless.

CREATE TABLE IF NOT EXISTS keys (
    token TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    key_name TEXT NOT NULL,
    key_alias TEXT UNIQUE,
    models TEXT NOT NULL DEFAULT '[]',
    max_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    user_id TEXT,
    team_id TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    blocked BIGINT NOT NULL DEFAULT 0,
    expires BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    vault_secret_name TEXT
);

CREATE INDEX IF NOT EXISTS keys_user_id ON keys (user_id);
CREATE INDEX IF NOT EXISTS keys_team_id ON keys (team_id);
CREATE INDEX IF NOT EXISTS keys_budget_reset_at ON keys (budget_reset_at);
CREATE INDEX IF NOT EXISTS keys_vault_secret_name ON keys (vault_secret_name);

-- Vault deletions that have not succeeded yet; retried until done, across restarts.
CREATE TABLE IF NOT EXISTS vault_outbox (
    secret_name TEXT PRIMARY KEY NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL
);

-- Spend per key and UTC day, written by the batch writer (the key row holds the running total).
CREATE TABLE IF NOT EXISTS spend_logs (
    key_id TEXT NOT NULL,
    day TEXT NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
