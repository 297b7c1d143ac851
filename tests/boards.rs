//! Every committed board config parses, passes the checks, names a model
//! that exists and agrees with that model's classes.

use edgeseg::config::Config;
use std::path::Path;

#[test]
fn every_board_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let loaded = edgeseg::commands::run::load(config).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert!(loaded.model.meta.classes.len() >= 2);
        seen += 1;
    }
    assert!(seen >= 6, "expected the six board files, found {seen}");
}
