//! Seeding a dev server: namespaces, secrets engines, KV data, policies, AppRole and cert auth,
//! tokens.

use std::path::{Path, PathBuf};

use vaultgate_core::Result;

use super::{OpenBao, err};

impl OpenBao {
    /// `bao namespace create NAME` (nested: `parent/child` creates inside `parent`).
    pub fn create_namespace(&self, namespace: &str) -> Result<()> {
        match namespace.rsplit_once('/') {
            Some((parent, child)) => self.bao(&[
                "namespace",
                "create",
                &format!("-namespace={parent}"),
                child,
            ])?,
            None => self.bao(&["namespace", "create", namespace])?,
        };
        Ok(())
    }

    /// Enables a KV v2 engine at `mount` (in `namespace` when given).
    pub fn enable_kv2(&self, namespace: Option<&str>, mount: &str) -> Result<()> {
        let ns = ns_flag(namespace);
        let path = format!("-path={mount}");
        let mut args = vec!["secrets", "enable"];
        args.extend(ns.as_deref());
        args.extend([path.as_str(), "kv-v2"]);
        self.bao(&args)?;
        Ok(())
    }

    /// OpenBao's RabbitMQ engine with a role `gateway`, whose far end (RabbitMQ's management
    /// API) `connection_uri` plays (the mock upstream does): its leases last `ttl` seconds,
    /// renewable up to `max_ttl`. `vault://rabbitmq/creds/gateway#password` reads one.
    pub fn enable_rabbitmq(&self, connection_uri: &str, ttl: u32, max_ttl: u32) -> Result<()> {
        self.bao(&["secrets", "enable", "rabbitmq"])?;
        self.bao(&[
            "write",
            "rabbitmq/config/connection",
            &format!("connection_uri={connection_uri}"),
            "username=admin",
            "password=admin",
            "verify_connection=false",
        ])?;
        self.bao(&[
            "write",
            "rabbitmq/config/lease",
            &format!("ttl={ttl}"),
            &format!("max_ttl={max_ttl}"),
        ])?;
        self.bao(&[
            "write",
            "rabbitmq/roles/gateway",
            r#"vhosts={"/":{"configure":"","write":".*","read":".*"}}"#,
        ])?;
        Ok(())
    }

    /// Writes `{"key": value}` at `mount/data/path` (the shape vaultgate reads).
    pub fn kv_put(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
        value: &str,
    ) -> Result<()> {
        self.kv_put_fields(namespace, mount, path, &[("key", value)])
    }

    /// Writes arbitrary string fields at `mount/data/path`.
    pub fn kv_put_fields(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<()> {
        let ns = ns_flag(namespace);
        let mount_flag = format!("-mount={mount}");
        let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["kv", "put"];
        args.extend(ns.as_deref());
        args.push(&mount_flag);
        args.push(path);
        args.extend(pairs.iter().map(String::as_str));
        self.bao(&args)?;
        Ok(())
    }

    /// Reads the raw KV v2 answer (`data.data`, `data.metadata`) at `mount/data/path`, or None.
    pub fn kv_get(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
    ) -> Result<Option<serde_json::Value>> {
        let ns = ns_flag(namespace);
        let mount_flag = format!("-mount={mount}");
        let mut args = vec!["kv", "get", "-format=json"];
        args.extend(ns.as_deref());
        args.push(&mount_flag);
        args.push(path);
        let output = self
            .cli_command(&args)
            .output()
            .map_err(|e| err(format!("cannot run bao: {e}")))?;
        if output.status.code() == Some(2) {
            return Ok(None);
        }
        if !output.status.success() {
            return Err(err(format!(
                "bao kv get failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| err(format!("bao kv get: bad json: {e}")))
    }

    /// `bao policy write NAME` with the HCL text.
    pub fn write_policy(&self, namespace: Option<&str>, name: &str, hcl: &str) -> Result<()> {
        let file = self.dir.path().join(format!("policy-{name}.hcl"));
        std::fs::write(&file, hcl).map_err(|e| err(format!("write policy file: {e}")))?;
        let ns = ns_flag(namespace);
        let file = file.display().to_string();
        let mut args = vec!["policy", "write"];
        args.extend(ns.as_deref());
        args.extend([name, file.as_str()]);
        self.bao(&args)?;
        Ok(())
    }

    /// Enables AppRole at `approle/` and creates `role`; returns `(role_id, secret_id)`.
    pub fn enable_approle(
        &self,
        namespace: Option<&str>,
        role: &str,
        policies: &str,
        token_ttl: &str,
        token_max_ttl: &str,
    ) -> Result<(String, String)> {
        let ns = ns_flag(namespace);
        let with_ns = |rest: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = rest[..2].iter().map(|s| s.to_string()).collect();
            args.extend(ns.clone());
            args.extend(rest[2..].iter().map(|s| s.to_string()));
            args
        };
        let run = |args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            self.bao(&refs)
        };
        run(with_ns(&["auth", "enable", "approle"]))?;
        run(with_ns(&[
            "write",
            "-f",
            &format!("auth/approle/role/{role}"),
            &format!("token_policies={policies}"),
            &format!("token_ttl={token_ttl}"),
            &format!("token_max_ttl={token_max_ttl}"),
        ]))?;
        let role_id = run(with_ns(&[
            "read",
            "-field=role_id",
            &format!("auth/approle/role/{role}/role-id"),
        ]))?;
        let secret_id = run(with_ns(&[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/approle/role/{role}/secret-id"),
        ]))?;
        Ok((role_id.trim().to_owned(), secret_id.trim().to_owned()))
    }

    /// Enables TLS cert auth at `cert/` with `role` trusting the PEM certificate at `cert_pem`.
    pub fn enable_cert_auth(
        &self,
        namespace: Option<&str>,
        role: &str,
        cert_pem: &Path,
        policies: &str,
        ttl: &str,
        max_ttl: &str,
    ) -> Result<()> {
        let ns = ns_flag(namespace);
        let mut enable = vec!["auth", "enable"];
        enable.extend(ns.as_deref());
        enable.push("cert");
        self.bao(&enable)?;
        let path = format!("auth/cert/certs/{role}");
        let certificate = format!("certificate=@{}", cert_pem.display());
        let policies = format!("token_policies={policies}");
        let ttl = format!("token_ttl={ttl}");
        let max_ttl = format!("token_max_ttl={max_ttl}");
        let mut write = vec!["write"];
        write.extend(ns.as_deref());
        write.extend([
            path.as_str(),
            certificate.as_str(),
            policies.as_str(),
            ttl.as_str(),
            max_ttl.as_str(),
        ]);
        self.bao(&write)?;
        Ok(())
    }

    /// Creates a token (`bao token create`) with the given policies, TTL and explicit max TTL.
    pub fn create_token(
        &self,
        namespace: Option<&str>,
        policies: &[&str],
        ttl: &str,
        explicit_max_ttl: Option<&str>,
    ) -> Result<String> {
        let ns = ns_flag(namespace);
        let mut args: Vec<String> = vec!["token".into(), "create".into(), "-field=token".into()];
        args.extend(ns);
        args.push(format!("-ttl={ttl}"));
        if let Some(max) = explicit_max_ttl {
            args.push(format!("-explicit-max-ttl={max}"));
        }
        for policy in policies {
            args.push(format!("-policy={policy}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(self.bao(&refs)?.trim().to_owned())
    }
}

fn ns_flag(namespace: Option<&str>) -> Option<String> {
    namespace
        .filter(|ns| !ns.is_empty())
        .map(|ns| format!("-namespace={ns}"))
}

/// A self-signed client certificate (CN `common_name`, client-auth usage) and its key, written
/// as `NAME.pem` / `NAME-key.pem` in `dir`; returns `(cert_path, key_path)`.
pub fn generate_client_cert(
    dir: &Path,
    name: &str,
    common_name: &str,
) -> Result<(PathBuf, PathBuf)> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(|e| err(format!("rcgen params: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().map_err(|e| err(format!("rcgen key: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| err(format!("rcgen cert: {e}")))?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).map_err(|e| err(format!("write cert: {e}")))?;
    std::fs::write(&key_path, key.serialize_pem()).map_err(|e| err(format!("write key: {e}")))?;
    Ok((cert_path, key_path))
}
