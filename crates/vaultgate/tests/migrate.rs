//! `vaultgate migrate litellm` end to end: a LiteLLM-shaped database (tables, types and rows as
//! LiteLLM's Prisma schema writes them) in a PostgreSQL database of the test's own, migrated
//! into SQLite and into PostgreSQL; the old raw keys then authenticate through the real gateway
//! with their limits, spend, expiry and blocked state; a second run changes nothing; a run that
//! fails half-way writes nothing; and the errors a user hits name what to do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use serde_json::{Value, json};
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::{PgSchema, base_url};

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-migrate-e2e-1";

/// Raw keys as LiteLLM handed them out; the database holds only their SHA-256.
const ALPHA: &str = "sk-litellm-alpha-AAAAAAAAAAAAAAAAAAAAAA";
const BLOCKED: &str = "sk-litellm-blocked-BBBBBBBBBBBBBBBBBBBB";
const EXPIRED: &str = "sk-litellm-expired-CCCCCCCCCCCCCCCCCCCC";
const ONLY_B: &str = "sk-litellm-only-b-DDDDDDDDDDDDDDDDDDDDD";
const SPENT: &str = "sk-litellm-spent-EEEEEEEEEEEEEEEEEEEEEE";

/// LiteLLM's tables as `prisma db push` creates them (the columns vaultgate reads, and a few it
/// does not, such as the user's password hash).
const SCHEMA: &str = r#"
CREATE TABLE "LiteLLM_BudgetTable" (budget_id TEXT PRIMARY KEY, max_budget DOUBLE PRECISION,
  soft_budget DOUBLE PRECISION, max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT,
  model_max_budget JSONB, budget_duration TEXT, budget_reset_at TIMESTAMP(3),
  allowed_models TEXT[] DEFAULT ARRAY[]::TEXT[],
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, created_by TEXT NOT NULL,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_by TEXT NOT NULL);
CREATE TABLE "LiteLLM_OrganizationTable" (organization_id TEXT PRIMARY KEY,
  organization_alias TEXT NOT NULL, budget_id TEXT NOT NULL, metadata JSONB NOT NULL DEFAULT '{}',
  models TEXT[], spend DOUBLE PRECISION NOT NULL DEFAULT 0, model_spend JSONB NOT NULL DEFAULT '{}',
  object_permission_id TEXT,
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, created_by TEXT NOT NULL,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_by TEXT NOT NULL);
CREATE TABLE "LiteLLM_TeamTable" (team_id TEXT PRIMARY KEY, team_alias TEXT,
  organization_id TEXT, object_permission_id TEXT, admins TEXT[], members TEXT[],
  members_with_roles JSONB NOT NULL DEFAULT '{}', metadata JSONB NOT NULL DEFAULT '{}',
  max_budget DOUBLE PRECISION, soft_budget DOUBLE PRECISION,
  spend DOUBLE PRECISION NOT NULL DEFAULT 0, models TEXT[], max_parallel_requests INTEGER,
  tpm_limit BIGINT, rpm_limit BIGINT, budget_duration TEXT, budget_reset_at TIMESTAMP(3),
  blocked BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  model_spend JSONB NOT NULL DEFAULT '{}', model_max_budget JSONB NOT NULL DEFAULT '{}',
  model_id INTEGER);
CREATE TABLE "LiteLLM_UserTable" (user_id TEXT PRIMARY KEY, user_alias TEXT, team_id TEXT,
  sso_user_id TEXT, organization_id TEXT, password TEXT, teams TEXT[] DEFAULT ARRAY[]::TEXT[],
  user_role TEXT, max_budget DOUBLE PRECISION, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
  user_email TEXT, models TEXT[], metadata JSONB NOT NULL DEFAULT '{}',
  max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT, budget_duration TEXT,
  budget_reset_at TIMESTAMP(3), model_spend JSONB NOT NULL DEFAULT '{}',
  model_max_budget JSONB NOT NULL DEFAULT '{}',
  created_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "LiteLLM_VerificationToken" (token TEXT PRIMARY KEY, key_name TEXT, key_alias TEXT,
  soft_budget_cooldown BOOLEAN NOT NULL DEFAULT false, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
  expires TIMESTAMP(3), models TEXT[], aliases JSONB NOT NULL DEFAULT '{}',
  config JSONB NOT NULL DEFAULT '{}', user_id TEXT, team_id TEXT,
  permissions JSONB NOT NULL DEFAULT '{}', max_parallel_requests INTEGER,
  metadata JSONB NOT NULL DEFAULT '{}', blocked BOOLEAN, tpm_limit BIGINT, rpm_limit BIGINT,
  max_budget DOUBLE PRECISION, budget_duration TEXT, budget_reset_at TIMESTAMP(3),
  allowed_cache_controls TEXT[] DEFAULT ARRAY[]::TEXT[], model_spend JSONB NOT NULL DEFAULT '{}',
  model_max_budget JSONB NOT NULL DEFAULT '{}', budget_id TEXT, organization_id TEXT,
  created_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP, created_by TEXT,
  updated_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP, updated_by TEXT);
CREATE TABLE "LiteLLM_EndUserTable" (user_id TEXT PRIMARY KEY, alias TEXT,
  spend DOUBLE PRECISION NOT NULL DEFAULT 0, allowed_model_region TEXT, default_model TEXT,
  budget_id TEXT, object_permission_id TEXT, blocked BOOLEAN NOT NULL DEFAULT false);
CREATE TABLE "LiteLLM_TeamMembership" (user_id TEXT NOT NULL, team_id TEXT NOT NULL,
  spend DOUBLE PRECISION NOT NULL DEFAULT 0, total_spend DOUBLE PRECISION NOT NULL DEFAULT 0,
  budget_id TEXT, PRIMARY KEY (user_id, team_id));
CREATE TABLE "LiteLLM_OrganizationMembership" (user_id TEXT NOT NULL, organization_id TEXT NOT NULL,
  user_role TEXT, spend DOUBLE PRECISION DEFAULT 0, budget_id TEXT,
  created_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (user_id, organization_id));
"#;

/// Rows as LiteLLM writes them; each key's token is computed here by PostgreSQL, not by
/// vaultgate.
fn rows() -> String {
    let insert = |raw: &str, columns: &str, values: &str| {
        format!(
            "INSERT INTO \"LiteLLM_VerificationToken\" (token, key_name, {columns}) \
             SELECT encode(sha256('{raw}'::bytea), 'hex'), 'sk-...{}', {values};",
            &raw[raw.len() - 4..]
        )
    };
    [
        r#"INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, budget_duration, budget_reset_at, created_by, updated_by, model_max_budget)
           VALUES ('b-org', 1000, '30d', '2099-01-01 00:00:00', 'admin', 'admin', NULL),
                  ('b-member', 20, NULL, NULL, 'admin', 'admin', '{}');"#
            .to_owned(),
        r#"INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, models, spend, metadata, created_by, updated_by)
           VALUES ('o-acme', 'Acme', 'b-org', ARRAY[]::TEXT[], 3.5, '{"region": "eu"}', 'admin', 'admin');"#
            .to_owned(),
        r#"INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, organization_id, admins, members, members_with_roles, metadata, max_budget, spend, models, tpm_limit, rpm_limit, soft_budget)
           VALUES ('t-eng', 'eng', 'o-acme', ARRAY['u-alice'], ARRAY['u-alice', 'u-bob'],
                   '[{"role": "admin", "user_id": "u-alice", "user_email": null},
                     {"role": "user", "user_id": null, "user_email": "bob@example.com"}]',
                   '{"team_member_budget_id": "b-member", "cost_center": "42"}', 100, 3.5,
                   ARRAY['gpt-a', 'gpt-b'], 100000, 1000, 80);"#
            .to_owned(),
        r#"INSERT INTO "LiteLLM_UserTable" (user_id, user_role, user_email, password, models, spend, max_budget, teams)
           VALUES ('u-alice', 'proxy_admin', 'alice@example.com', 'pbkdf2-secret-hash', ARRAY[]::TEXT[], 1.25, NULL, ARRAY['t-eng']),
                  ('u-bob', 'internal_user', 'bob@example.com', NULL, ARRAY[]::TEXT[], 0.5, 50, ARRAY['t-eng']);"#
            .to_owned(),
        r#"INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend, budget_id) VALUES ('u-bob', 't-eng', 0.5, 'b-member');"#
            .to_owned(),
        r#"INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id, user_role, spend) VALUES ('u-alice', 'o-acme', 'org_admin', NULL);"#
            .to_owned(),
        r#"INSERT INTO "LiteLLM_EndUserTable" (user_id, alias, spend, budget_id) VALUES ('e-cust', 'Customer', 0.3, 'b-member');"#
            .to_owned(),
        insert(
            ALPHA,
            "key_alias, models, spend, max_budget, metadata, rpm_limit, user_id, team_id, expires, aliases",
            "'alpha', ARRAY['gpt-a'], 1.25, 10, '{\"tags\": [\"prod\"], \"note\": \"x\"}', 100, 'u-alice', 't-eng', '2099-06-01 12:00:00.250', '{\"m\": \"gpt-a\"}'",
        ),
        insert(BLOCKED, "blocked, models", "true, ARRAY[]::TEXT[]"),
        insert(EXPIRED, "expires, models", "'2020-01-01 00:00:00', ARRAY[]::TEXT[]"),
        insert(ONLY_B, "models, blocked", "ARRAY['gpt-b'], false"),
        insert(SPENT, "models, max_budget, spend", "ARRAY[]::TEXT[], 1, 2"),
    ]
    .join("\n")
}

/// A PostgreSQL database of the test's own on the local server, dropped on drop.
struct Database {
    name: String,
    url: String,
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-t", "-A", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Database {
    fn create() -> Self {
        let name = format!("vg_litellm_{}", uuid_like());
        psql(&base_url(), &format!("CREATE DATABASE {name}"));
        let base = base_url();
        let (server, _) = base.split('?').next().unwrap().rsplit_once('/').unwrap();
        Self {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(base_url())
            .args([
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

fn config(database_url: &str) -> String {
    format!(
        "model_list:\n  - model_name: gpt-a\n    litellm_params: {{model: openai/gpt-a, mock_response: hi}}\n  \
         - model_name: gpt-b\n    litellm_params: {{model: openai/gpt-b, mock_response: hi}}\n\
         general_settings:\n  master_key: {MASTER}\n  database_url: \"{database_url}\"\n"
    )
}

fn migrate(config: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["migrate", "litellm"];
    all.extend_from_slice(args);
    let Output {
        status,
        stdout,
        stderr,
    } = Gateway::builder(BIN, config).run(&all).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    // Column widths aside.
    let text = text
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    (status.success(), text)
}

async fn chat(gateway: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin_get(gateway: &Gateway, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_litellm_database_moves_and_its_keys_keep_working() {
    let litellm = Database::create();
    psql(&litellm.url, SCHEMA);
    psql(&litellm.url, &rows());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("vaultgate.db");
    let config = config(&format!("sqlite://{}", store.display()));
    let from = ["--from", litellm.url.as_str()];

    // A dry run lists what it would write and creates nothing.
    let (ok, out) = migrate(&config, &[from[0], from[1], "--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("+ key sk-...AAAA (alpha)"), "{out}");
    assert!(out.contains("+ team eng (t-eng)"), "{out}");
    assert!(
        out.contains("Dry run: 15 records would be written"),
        "{out}"
    );
    assert!(!store.exists(), "a dry run created the store");

    // The migration: a summary, what is not carried over, and the word on Vault copies.
    let (ok, out) = migrate(&config, &from);
    assert!(ok, "{out}");
    for expected in [
        "keys 5 new",
        "teams 1 new",
        "team members 2 new",
        "users 2 new",
        "organizations 1 new",
        "end users 1 new",
        "budgets 2 new",
        "1 key with aliases (model aliases): not carried over",
        "1 team with soft_budget",
        "cannot write Vault copies of migrated keys",
        "Done: 15 records written in one transaction",
    ] {
        assert!(out.contains(expected), "{expected}:\n{out}");
    }
    assert!(!out.contains("pbkdf2-secret-hash"), "{out}");

    // Run again: nothing changes, and it says so.
    let (ok, out) = migrate(&config, &from);
    assert!(ok, "{out}");
    assert!(out.contains("keys 5 unchanged"), "{out}");
    assert!(out.contains("Nothing to change"), "{out}");

    // A change made in LiteLLM since shows up as that change.
    psql(
        &litellm.url,
        "UPDATE \"LiteLLM_TeamTable\" SET spend = 4.5 WHERE team_id = 't-eng'",
    );
    let (ok, out) = migrate(&config, &[from[0], from[1], "--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("~ team eng (t-eng): spend"), "{out}");
    assert!(out.contains("Dry run: 1 record would be written"), "{out}");

    // The old raw keys, through the gateway.
    let gateway = Gateway::builder(BIN, &config)
        .dir(dir.path())
        .start()
        .unwrap();
    let (status, body) = chat(&gateway, ALPHA, "gpt-a").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat(&gateway, ALPHA, "gpt-b").await;
    assert!(status == 401 || status == 403, "{status} {body}");
    let (status, body) = chat(&gateway, ONLY_B, "gpt-b").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat(&gateway, BLOCKED, "gpt-a").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("blocked"), "{body}");
    let (status, body) = chat(&gateway, EXPIRED, "gpt-a").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.to_string().to_lowercase().contains("expired"),
        "{body}"
    );
    let (status, body) = chat(&gateway, SPENT, "gpt-a").await;
    assert!(status == 400 || status == 429, "{status} {body}");
    assert!(body.to_string().contains("udget"), "{body}");

    let info = admin_get(&gateway, &format!("/key/info?key={ALPHA}")).await;
    let key = &info["info"];
    assert_eq!(key["key_alias"], "alpha", "{info}");
    assert!(key["spend"].as_f64().unwrap() >= 1.25, "{info}");
    assert_eq!(key["max_budget"], 10.0, "{info}");
    assert_eq!(key["rpm_limit"], 100, "{info}");
    assert_eq!(key["tags"], json!(["prod"]), "{info}");
    assert_eq!(key["metadata"]["note"], "x", "{info}");
    assert_eq!(key["team_id"], "t-eng", "{info}");
    assert_eq!(key["expires"], "2099-06-01T12:00:00.25Z", "{info}");

    let team = admin_get(&gateway, "/team/info?team_id=t-eng").await;
    let text = team.to_string();
    assert!(text.contains("\"team_member_budget_table\""), "{team}");
    let members = &team["team_info"]["members_with_roles"];
    let roles: Vec<(String, String)> = members
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap_or_default().to_owned(),
                m["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        roles.contains(&("u-alice".into(), "admin".into())),
        "{team}"
    );
    assert!(roles.contains(&("u-bob".into(), "user".into())), "{team}");
    assert_eq!(team["team_info"]["spend"], 3.5, "{team}");
    assert_eq!(team["team_info"]["organization_id"], "o-acme", "{team}");
    gateway.stop();
}

#[tokio::test]
async fn a_failed_run_writes_nothing_and_errors_say_what_to_do() {
    let litellm = Database::create();
    psql(&litellm.url, SCHEMA);
    psql(&litellm.url, &rows());
    let target = PgSchema::create().unwrap();
    let config = config(&target.url);

    // Two LiteLLM users with one email (vaultgate keeps emails unique): the run fails on the
    // second user, after budgets, teams and members were written, and leaves nothing behind.
    psql(
        &litellm.url,
        "INSERT INTO \"LiteLLM_UserTable\" (user_id, user_email, models) \
         VALUES ('u-bob-2', 'bob@example.com', ARRAY[]::TEXT[])",
    );
    let (ok, out) = migrate(&config, &["--from", &litellm.url]);
    assert!(!ok, "{out}");
    assert!(out.contains("clashes with another user"), "{out}");
    assert!(out.contains("nothing was imported"), "{out}");
    let count = |table: &str| {
        psql(
            &base_url(),
            &format!("SELECT COUNT(*) FROM {}.{table}", target.name),
        )
    };
    for table in ["keys", "teams", "budgets", "users"] {
        assert_eq!(count(table), "0", "{table}");
    }

    // Fixed in LiteLLM, the run goes through into PostgreSQL.
    psql(
        &litellm.url,
        "DELETE FROM \"LiteLLM_UserTable\" WHERE user_id = 'u-bob-2'",
    );
    let (ok, out) = migrate(&config, &["--from", &litellm.url]);
    assert!(ok, "{out}");
    assert!(out.contains("keys 5 new"), "{out}");
    assert_eq!(count("keys"), "5");
    let (ok, out) = migrate(&config, &["--from", &litellm.url]);
    assert!(ok && out.contains("Nothing to change"), "{out}");

    // Errors: not a PostgreSQL URL, nobody listening, no LiteLLM tables, a LiteLLM too old.
    let (ok, out) = migrate(&config, &["--from", "mysql://db/litellm"]);
    assert!(
        !ok && out.contains("--from must be the PostgreSQL URL"),
        "{out}"
    );
    let port = vaultgate_testkit::openbao::free_port().unwrap();
    let nobody = format!("postgres://postgres:pw-not-shown@127.0.0.1:{port}/litellm");
    let (ok, out) = migrate(&config, &["--from", &nobody]);
    assert!(
        !ok && out.contains("cannot reach the LiteLLM database"),
        "{out}"
    );
    assert!(!out.contains("pw-not-shown"), "{out}");
    let (ok, out) = migrate(
        &config,
        &["--from", &format!("{}?schema=nothing_here", litellm.url)],
    );
    assert!(
        !ok && out.contains("no LiteLLM tables in schema \"nothing_here\""),
        "{out}"
    );
    psql(
        &litellm.url,
        "CREATE SCHEMA old; CREATE TABLE old.\"LiteLLM_VerificationToken\" (token TEXT PRIMARY KEY, spend DOUBLE PRECISION)",
    );
    let (ok, out) = migrate(&config, &["--from", &format!("{}?schema=old", litellm.url)]);
    assert!(!ok && out.contains("too old to migrate from"), "{out}");
    assert!(out.contains("table LiteLLM_TeamTable"), "{out}");
    assert!(out.contains("LiteLLM_VerificationToken.expires"), "{out}");
}
