use std::io::Write;

use pixdrop::config::{Config, Overrides};

fn load(toml: &str) -> Result<Config, String> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(toml.as_bytes()).unwrap();
    Config::load(Some(f.path()), &Overrides::default()).map_err(|e| e.to_string())
}

#[test]
fn a_file_sets_keys_and_flags_override_it() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(
        b"listen = \"127.0.0.1:9999\"\nmaster_size = 256\n[tenant_defaults]\nsession_ttl = \"90s\"\nmax_upload_bytes = 1000\n",
    )
    .unwrap();
    let c = Config::load(Some(f.path()), &Overrides::default()).unwrap();
    assert_eq!(c.listen, "127.0.0.1:9999");
    assert_eq!(c.master_size, 256);
    assert_eq!(c.tenant_defaults.session_ttl.as_secs(), 90);
    assert_eq!(c.tenant_defaults.max_upload_bytes, 1000);
    let flags = Overrides {
        listen: Some("127.0.0.1:1".into()),
        ..Overrides::default()
    };
    let c = Config::load(Some(f.path()), &flags).unwrap();
    assert_eq!(c.listen, "127.0.0.1:1");
}

#[test]
fn an_unknown_key_in_the_file_stops_start_up_and_is_named() {
    let e = load("lisen = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(e.contains("lisen"), "{e}");
    let e = load("[tenant_defaults]\nsession_tll = \"1m\"\n").unwrap_err();
    assert!(e.contains("session_tll"), "{e}");
}

#[test]
fn a_malformed_value_is_named() {
    let e = load("master_size = \"big\"\n").unwrap_err();
    assert!(e.contains("master_size"), "{e}");
    let e = load("[tenant_defaults]\nsession_ttl = \"soon\"\n").unwrap_err();
    assert!(e.contains("session_ttl") && e.contains("soon"), "{e}");
    let e = load("master_size = 0\n").unwrap_err();
    assert!(e.contains("master_size"), "{e}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let e = Config::load(
        Some(std::path::Path::new("/nonexistent/pixdrop.toml")),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not exist"), "{e}");
}
