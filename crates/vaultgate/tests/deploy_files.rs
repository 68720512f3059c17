//! The Dockerfile and Kubernetes manifests cannot be run here (no Docker daemon, no cluster), so
//! what can be checked is: every manifest parses, its config is one vaultgate accepts, and the
//! probes, ports, user and arguments it names are the ones the image and the binary really have
//! (the probes are asked of a running gateway started with the manifest's arguments).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn manifests() -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/kubernetes/vaultgate.yaml")).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifests"))
}

#[test]
fn the_manifests_parse_and_agree_with_each_other_and_the_image() {
    let docs = manifests();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget"
        ]
    );
    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"],
        kind(&docs, "ServiceAccount")["metadata"]["name"]
    );
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let container = &pod["containers"][0];
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args[args.iter().position(|a| *a == "--port").unwrap() + 1],
        port.to_string()
    );
    // No credential in the manifests: the pod logs in to Vault with its service account.
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(env.contains(&"HCP_VAULT_K8S_ROLE"));
    assert!(
        !env.iter()
            .any(|n| n.contains("TOKEN") || n.contains("SECRET") || n.contains("KEY"))
    );
    assert!(!docs.iter().any(|d| d["kind"] == "Secret"));

    // The image: distroless, non-root as the pod expects, the same port and arguments.
    let dockerfile = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    let last_from = dockerfile
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert!(
        last_from.contains("distroless") && last_from.contains(":nonroot"),
        "{last_from}"
    );
    assert!(dockerfile.contains("USER nonroot"));
    assert_eq!(
        pod["securityContext"]["runAsUser"], 65532,
        "distroless's nonroot user"
    );
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));
    let service = kind(&docs, "Service");
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"],
        container["ports"][0]["name"]
    );

    // The config in the ConfigMap is one vaultgate accepts.
    let config = kind(&docs, "ConfigMap")["data"]["config.yaml"]
        .as_str()
        .unwrap();
    vaultgate_config::Config::parse(config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_answer_on_a_gateway_started_like_the_pod() {
    let docs = manifests();
    let container = &kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let config = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o-mini\n      mock_response: hi\ngeneral_settings:\n  master_key: sk-deploy-probe-1\n";
    let gateway = Gateway::builder(BIN, config).start().unwrap();
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        let status = reqwest::get(format!("{}{path}", gateway.url))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{probe} {path}");
    }
}
