//! `config.yaml` as the gateway reads it at start and `vaultgate check` reads it: any text either
//! parses or is refused with a message, and what parses builds its router (every deployment) or
//! is refused with a message, and can be walked for its secret references.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultgate_config::{Config, ConfigValue, VaultRef, model_target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text) {
        let _ = config.secret_values();
        let _ = config.references();
        let _ = config.vault_references();
        let _ = config.default_references();
        let _ = vaultgate_router::Router::from_config(&config);
    }
    // The value and model readers on their own, line by line, as they see single settings.
    for line in text.lines().take(64) {
        let _ = ConfigValue::parse(line);
        let _ = VaultRef::parse(line);
        let _ = model_target(line);
    }
});
