-- Teams, internal users, organizations, end users (customers) and shared budgets: LiteLLM's
-- management plane. Portable SQL as in the first migration (SQLite and PostgreSQL): times are
-- unix milliseconds, booleans 0/1, lists and objects JSON text. Integrity between the tables is
-- kept by the management API in transactions (no foreign keys: SQLite leaves them off).

-- Shared budget objects (LiteLLM_BudgetTable): limits that end users, team members and
-- organizations point to. Spend is kept by whoever points to one, never here.
CREATE TABLE IF NOT EXISTS budgets (
    budget_id TEXT PRIMARY KEY NOT NULL,
    max_budget DOUBLE PRECISION,
    soft_budget DOUBLE PRECISION,
    max_parallel_requests BIGINT,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    model_max_budget TEXT NOT NULL DEFAULT '{}',
    budget_duration TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS organizations (
    organization_id TEXT PRIMARY KEY NOT NULL,
    organization_alias TEXT NOT NULL UNIQUE,
    budget_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    models TEXT NOT NULL DEFAULT '[]',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at BIGINT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS teams (
    team_id TEXT PRIMARY KEY NOT NULL,
    team_alias TEXT UNIQUE,
    organization_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    models TEXT NOT NULL DEFAULT '[]',
    max_budget DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    blocked BIGINT NOT NULL DEFAULT 0,
    -- Budget applied to members without one of their own (`team_member_budget`).
    team_member_budget_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS teams_organization_id ON teams (organization_id);

CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY NOT NULL,
    user_alias TEXT,
    user_email TEXT UNIQUE,
    user_role TEXT NOT NULL DEFAULT 'internal_user',
    organization_id TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    max_budget DOUBLE PRECISION,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A user in a team (LiteLLM_TeamMembership plus the role of members_with_roles).
CREATE TABLE IF NOT EXISTS team_memberships (
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_id TEXT,
    budget_reset_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);

CREATE INDEX IF NOT EXISTS team_memberships_user_id ON team_memberships (user_id);

CREATE TABLE IF NOT EXISTS organization_memberships (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_role TEXT NOT NULL DEFAULT 'internal_user',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);

CREATE INDEX IF NOT EXISTS organization_memberships_user_id ON organization_memberships (user_id);

-- End users (customers): the `user` field of a model request. Rows appear with /end_user/new or
-- with the first spend of a `user` value (like LiteLLM).
CREATE TABLE IF NOT EXISTS end_users (
    user_id TEXT PRIMARY KEY NOT NULL,
    alias TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    allowed_model_region TEXT,
    default_model TEXT,
    budget_id TEXT,
    budget_reset_at BIGINT,
    blocked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS end_users_budget_id ON end_users (budget_id);
