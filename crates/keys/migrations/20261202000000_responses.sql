-- Responses API responses that vaultgate translated for a non-OpenAI deployment, kept so that
-- GET /v1/responses/{id}, its input items and previous_response_id work as on OpenAI. Written
-- in batches off the request path, deleted after the retention period. Portable SQL as in the
-- first migration: times are unix milliseconds, objects and lists JSON text. `owner` is the
-- virtual key's SHA-256 (never the raw key), or litellm_proxy_master_key for the master key.
-- `history` holds the items of the earlier turns (from previous_response_id) that preceded
-- `input_items`.
CREATE TABLE IF NOT EXISTS stored_responses (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    history TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS stored_responses_created_at ON stored_responses (created_at);
