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

/// A database of its own in the local PostgreSQL (channels and advisory locks are per
/// database), dropped again on drop, with whoever is still connected.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Result<Self, String> {
        let name = format!("vg_e2e_{}", uuid::Uuid::new_v4().simple());
        psql(&format!("CREATE DATABASE {name}"))?;
        let base = base_url();
        // The same server and credentials, another database.
        let (server, query) = match base.split_once('?') {
            Some((server, query)) => (server, format!("?{query}")),
            None => (base.as_str(), String::new()),
        };
        let server = server.rsplit_once('/').map_or(server, |(s, _)| s);
        Ok(Self {
            url: format!("{server}/{name}{query}"),
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A PostgreSQL cluster of the test's own (`initdb` + `pg_ctl` in a temp dir, on a free port of
/// 127.0.0.1), for tests that stop and start the database. As root, the server runs as the
/// `postgres` user (PostgreSQL refuses to run as root). Stopped on drop.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl OwnCluster {
    pub fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            chown_to_postgres(dir.path())?;
        }
        let port = crate::openbao::free_port().map_err(|e| e.to_string())?;
        let cluster = Self {
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        )?;
        cluster.resume()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`-m immediate`: like a crash, connections cut).
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn resume(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        } else {
            Command::new(program)
        };
        let output = command
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_to_postgres(path: &std::path::Path) -> Result<(), String> {
    let status = Command::new("chown")
        .args(["postgres:", &path.display().to_string()])
        .status()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("chown postgres failed (is there a postgres user?)".into())
    }
}
