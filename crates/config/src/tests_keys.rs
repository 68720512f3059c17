//! Unknown keys: typos are errors with a suggestion and a line, LiteLLM's settings are warnings.

use super::*;
use crate::known::{SETTINGS, Support};

fn error_of(text: &str) -> String {
    Config::parse(text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn a_misspelt_master_key_is_an_error_naming_line_and_suggestion() {
    let err = error_of("model_list: []\ngeneral_settings:\n  master_kye: sk-1\n");
    assert!(err.contains("config.yaml:3:3"), "{err}");
    assert!(err.contains("general_settings.master_kye"), "{err}");
    assert!(err.contains("did you mean `master_key`"), "{err}");
}

#[test]
fn typos_anywhere_are_errors_with_suggestions() {
    for (text, wanted) in [
        (
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, api_kye: k}\n",
            "`api_key`",
        ),
        (
            "general_settings:\n  key_management_settings: {store_virtual_key: true}\n",
            "`store_virtual_keys`",
        ),
        (
            "router_settings: {routing_stratgy: least-busy}\n",
            "`routing_strategy`",
        ),
        ("genral_settings: {master_key: x}\n", "`general_settings`"),
        ("model_list:\n  - model_nmae: x\n", "`model_name`"),
        (
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n    model_info: {input_cost_per_tokn: 1}\n",
            "`input_cost_per_token`",
        ),
        ("litellm_settings: {Drop_Params: true}\n", "`drop_params`"),
    ] {
        let err = error_of(text);
        assert!(err.contains(wanted), "{text:?} gave {err}");
    }
}

#[test]
fn a_key_in_the_wrong_section_points_to_the_right_one() {
    let err = error_of("litellm_settings: {master_key: sk-1}\n");
    assert!(err.contains("general_settings.master_key"), "{err}");
}

#[test]
fn every_typo_of_the_file_is_reported_at_once() {
    let err = error_of("general_settings: {master_kye: a, databse_url: b}\nrouter_setings: {}\n");
    assert!(err.contains("3 unknown setting(s)"), "{err}");
}

#[test]
fn a_key_nobody_knows_and_nothing_like_a_known_one_says_what_is_read_there() {
    let err = error_of("general_settings: {zzzzzzzzzz: 1}\n");
    assert!(
        err.contains("vaultgate reads here:") && err.contains("master_key"),
        "{err}"
    );
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn litellm_settings_we_do_not_implement_are_warnings_naming_the_feature() -> Result<()> {
    let config = Config::parse(
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, watsonx_region_name: p, my_provider_flag: 1}\n    model_info: {team_note: free metadata}\nlitellm_settings: {cache: true}\ngeneral_settings:\n  alerting: [slack]\nguardrails: []\n",
    )?;
    let found: Vec<String> = config.ignored.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found[0].starts_with("model_list[0].litellm_params.watsonx_region_name (line 3)"));
    assert!(found[1].contains("my_provider_flag") && found[1].contains("provider call"));
    assert!(
        found[2].starts_with("litellm_settings.cache (line 5)") && found[2].contains("caching")
    );
    assert!(found[3].contains("general_settings.alerting") && found[3].contains("alerting"));
    assert!(found[4].starts_with("guardrails (line 8)"));
    Ok(())
}

/// Every key the table calls implemented is a field of the typed config, and every field is in
/// the table as implemented: moving a LiteLLM setting to "implemented" takes both.
#[test]
fn the_table_and_the_typed_config_agree() -> Result<()> {
    let mut config =
        Config::parse("model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n")?;
    config.model_list[0].litellm_params.extra_headers.clear();
    let value = serde_json::to_value(&config).map_err(|e| Error::Internal(e.to_string()))?;
    let mut fields = Vec::new();
    collect_fields(&value, "", &mut fields);
    fields.sort();
    let mut implemented: Vec<String> = SETTINGS
        .iter()
        .filter(|(_, support)| !matches!(support, Support::Ignored(_)))
        .map(|(path, _)| (*path).to_owned())
        .collect();
    implemented.sort();
    assert_eq!(fields, implemented);
    Ok(())
}

fn collect_fields(value: &serde_json::Value, table: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if table.is_empty() {
                    key.clone()
                } else {
                    format!("{table}.{key}")
                };
                let descend = matches!(
                    known::support(&path),
                    Some(Support::Section | Support::OpenSection | Support::MetadataSection)
                );
                out.push(path.clone());
                if descend {
                    collect_fields(child, &path, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(first) = items.first() {
                collect_fields(first, &format!("{table}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_table_path_is_unique() {
    let mut paths: Vec<&str> = SETTINGS.iter().map(|(p, _)| *p).collect();
    paths.sort_unstable();
    let before = paths.len();
    paths.dedup();
    assert_eq!(before, paths.len());
}

const README_START: &str = "<!-- ignored-settings:start -->\n";
const README_END: &str = "<!-- ignored-settings:end -->";

/// The README's list of ignored LiteLLM settings is the table's. `UPDATE_README=1` rewrites it.
#[test]
fn the_readme_lists_exactly_the_ignored_settings() -> std::io::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path)?;
    let generated = known::ignored_settings_markdown();
    let (Some(start), Some(end)) = (readme.find(README_START), readme.find(README_END)) else {
        panic!("README.md has no {README_START:?} … {README_END:?} block");
    };
    let current = &readme[start + README_START.len()..end];
    if current != generated && std::env::var_os("UPDATE_README").is_some() {
        let updated = format!(
            "{}{generated}{}",
            &readme[..start + README_START.len()],
            &readme[end..]
        );
        std::fs::write(&path, updated)?;
        return Ok(());
    }
    assert_eq!(
        current, generated,
        "run UPDATE_README=1 cargo test -p vaultgate-config"
    );
    Ok(())
}
