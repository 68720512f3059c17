//! `vaultgate check`, per team: each Vault location the virtual-key copies use (the gateway's
//! and every team's `secret_manager_settings`), the teams that point there, and its drift.

use vaultgate_keys::DriftReport;

/// One line per location; `false` when a location has drift or could not be listed.
pub fn print_locations(drift: &DriftReport) -> bool {
    let mut ok = true;
    for at in &drift.locations {
        let teams = if at.teams.is_empty() {
            String::new()
        } else {
            format!(" (teams: {})", at.teams.join(", "))
        };
        let state = match &at.error {
            Some(error) => {
                ok = false;
                format!("cannot list: {error}")
            }
            None if at.drift > 0 => {
                ok = false;
                format!("{} copies in sync, {} DRIFT", at.copies, at.drift)
            }
            None => format!("{} copies in sync", at.copies),
        };
        println!("vault location: {}{teams}: {state}", at.description);
    }
    ok
}
