// Shapes of the gateway's admin API answers (LiteLLM's, plus vaultgate's admin status routes).

export type Role = "admin" | "viewer" | "internal_user";

export interface Session {
  signed_in: true;
  role: Role;
  /** `master key`, or the key name (`sk-...abcd`) of a virtual key. */
  subject: string;
  /** Unix seconds. */
  expires_at: number;
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
