// Shapes of the gateway's admin API answers (LiteLLM's, plus vaultgate's admin status routes).

export type Role = "admin" | "viewer" | "internal_user";

export interface Session {
  signed_in: true;
  role: Role;
  /** `master key`, or the key name (`sk-...abcd`) of a virtual key. */
  subject: string;
  /** Unix seconds. */
  expires_at: number;
  /** The user of the key signed in with (none for the master key). */
  user_id: string | null;
  csrf_token: string;
  features: { keys: boolean; vault_mirror: boolean };
}

export interface KeyInfo {
  token: string;
  key_name: string;
  key_alias: string | null;
  spend: number;
  max_budget: number | null;
  expires: string | null;
  models: string[];
  user_id: string | null;
  team_id: string | null;
  metadata: Record<string, unknown>;
  tags: string[];
  tpm_limit: number | null;
  rpm_limit: number | null;
  max_parallel_requests: number | null;
  budget_duration: string | null;
  budget_reset_at: string | null;
  blocked: boolean;
  created_at: string;
  updated_at: string;
  vault_secret_name: string | null;
}

export interface KeyList {
  keys: KeyInfo[];
  total_count: number;
  current_page: number;
  total_pages: number;
}

/** generate / regenerate: the record plus the raw key, shown once. */
export interface GeneratedKey extends KeyInfo {
  key: string;
}

export interface DeploymentStatus {
  id: string;
  provider: string;
  upstream_model: string;
  api_base: string | null;
  api_version: string | null;
  api_key: string | null;
  rpm: number | null;
  tpm: number | null;
  weight: number | null;
  timeout_secs: number;
  health: "healthy" | "failing" | "cooling_down" | "unused" | "mock";
  in_flight: number;
  latency_ms: number | null;
  failures_in_window: number;
  last_failure_secs_ago: number | null;
  cooldown_remaining_secs: number | null;
}

export interface ModelGroupStatus {
  model_name: string;
  num_retries: number;
  requests: {
    total: number;
    errors: number;
    error_rate: number | null;
    recent_total: number;
    recent_errors: number;
    recent_error_rate: number | null;
  };
  deployments: DeploymentStatus[];
}

/** `GET /admin/models`. */
export interface ModelsStatus {
  routing_strategy: string;
  allowed_fails: number;
  cooldown_time_secs: number;
  failure_window_secs: number;
  /** Seconds the recent rates cover; null: since the start. */
  window_secs: number | null;
  models: ModelGroupStatus[];
}

/** Limits shared by teams, users and budgets (LiteLLM's names). */
export interface Caps {
  max_budget: number | null;
  budget_duration: string | null;
  tpm_limit: number | null;
  rpm_limit: number | null;
  max_parallel_requests: number | null;
}

export type TeamRole = "admin" | "user";

export interface TeamInfo extends Caps {
  team_id: string;
  team_alias: string | null;
  organization_id: string | null;
  admins: string[];
  members: string[];
  members_with_roles: { user_id: string; user_email: string | null; role: TeamRole }[];
  models: string[];
  spend: number;
  blocked: boolean;
  created_at: string;
}

export interface TeamList {
  teams: TeamInfo[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}

export type UserRole = "proxy_admin" | "proxy_admin_viewer" | "internal_user" | "internal_user_viewer";

export interface UserInfo extends Caps {
  user_id: string;
  user_alias: string | null;
  user_email: string | null;
  user_role: UserRole;
  organization_id: string | null;
  teams: string[];
  models: string[];
  spend: number;
  key_count?: number;
  created_at: string;
}

export interface UserList {
  users: UserInfo[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}

export type OrgRole = "org_admin" | "internal_user" | "internal_user_viewer";

export interface OrgInfo {
  organization_id: string;
  organization_alias: string;
  models: string[];
  spend: number;
  litellm_budget_table: Caps | null;
  teams: TeamInfo[];
  members: { user_id: string; user_email: string | null; user_role: OrgRole }[];
  created_at: string;
}
