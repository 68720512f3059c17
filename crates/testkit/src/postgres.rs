//! A fresh schema in the local PostgreSQL for one test, dropped again on drop.

use std::process::Command;

/// `VAULTGATE_TEST_POSTGRES_URL`, else the CI server's `test` database.
pub fn base_url() -> String {
    std::env::var("VAULTGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct PgSchema {
    pub name: String,
    /// A `database_url` whose connections use only this schema.
    pub url: String,
}

fn psql(sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .arg(base_url())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl PgSchema {
    pub fn create() -> Result<Self, String> {
        let name = format!("vg_e2e_{}", uuid::Uuid::new_v4().simple());
        psql(&format!("CREATE SCHEMA {name}"))?;
        let base = base_url();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        Ok(Self { name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}
