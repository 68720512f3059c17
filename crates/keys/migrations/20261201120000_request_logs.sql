-- One row per model request (LiteLLM_SpendLogs), written in batches off the request path.
-- Portable SQL as in the first migration: times are unix milliseconds, lists and objects JSON
-- text. No primary key: a client may send the same x-request-id twice, and both requests are
-- logged. `api_key` is the key's SHA-256 (never the raw key); `messages` and `response` stay
-- empty unless store_prompts_in_spend_logs is on.
CREATE TABLE IF NOT EXISTS request_logs (
    request_id TEXT NOT NULL,
    call_type TEXT NOT NULL,
    api_key TEXT NOT NULL DEFAULT '',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    start_time BIGINT NOT NULL,
    end_time BIGINT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    model_id TEXT NOT NULL DEFAULT '',
    model_group TEXT NOT NULL DEFAULT '',
    custom_llm_provider TEXT NOT NULL DEFAULT '',
    api_base TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT '',
    team_id TEXT NOT NULL DEFAULT '',
    organization_id TEXT NOT NULL DEFAULT '',
    end_user TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    request_tags TEXT NOT NULL DEFAULT '[]',
    cache_hit TEXT NOT NULL DEFAULT 'False',
    status TEXT NOT NULL DEFAULT 'success',
    messages TEXT,
    response TEXT
);

CREATE INDEX IF NOT EXISTS request_logs_start_time ON request_logs (start_time);
CREATE INDEX IF NOT EXISTS request_logs_request_id ON request_logs (request_id);
CREATE INDEX IF NOT EXISTS request_logs_api_key ON request_logs (api_key, start_time);
CREATE INDEX IF NOT EXISTS request_logs_user_id ON request_logs (user_id, start_time);
CREATE INDEX IF NOT EXISTS request_logs_team_id ON request_logs (team_id, start_time);

-- The tags of each logged request, one row per tag, for /spend/tags without JSON functions.
CREATE TABLE IF NOT EXISTS request_log_tags (
    request_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS request_log_tags_start_time ON request_log_tags (start_time);
