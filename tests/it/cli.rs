//! The `sublist` binary as an operator uses it.

use std::process::Command;

fn sublist(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sublist"))
        .args(args)
        .env_remove("SUBLIST_CONFIG")
        .output()
        .expect("run sublist");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn check_config_lists_exactly_what_the_example_lacks() {
    let (code, out) = sublist(&["check-config", "config.example.toml"]);
    assert_eq!(code, 1, "{out}");
    let keys: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "discord.token",
            "spotify.apps[0].client_id",
            "spotify.apps[0].client_secret",
            "store.encryption_key"
        ],
        "{out}"
    );
}

#[test]
fn check_config_accepts_the_example_once_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string("config.example.toml").unwrap();
    let filled = example
        .replace("# token = \"\"", "token = \"bot-token-123\"")
        .replace("# client_id = \"\"", "client_id = \"cid\"")
        .replace(
            "# client_secret = \"\"",
            "client_secret = \"client-secret-456\"",
        )
        .replace(
            "# encryption_key = \"\"",
            "encryption_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"",
        );
    let path = write(&dir, "ok.toml", &filled);
    let (code, out) = sublist(&["check-config", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("configuration OK: 1 Spotify app(s) with room for 5 member(s)"),
        "{out}"
    );
    assert!(!out.contains("bot-token-123") && !out.contains("client-secret-456"));
}

#[test]
fn a_typo_and_a_wrong_type_are_named_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write(&dir, "typo.toml", "[web]\nlisen = \"127.0.0.1:1\"\n");
    let (code, out) = sublist(&["check-config", &typo]);
    assert_eq!(code, 1);
    assert!(
        out.contains("web.lisen: unknown key `lisen`; expected one of: listen, callback_path"),
        "{out}"
    );

    let wrong = write(&dir, "wrong.toml", "[spotify]\nmax_retries = \"lots\"\n");
    let (code, out) = sublist(&["check-config", &wrong]);
    assert_eq!(code, 1);
    assert!(out.contains("spotify.max_retries: expected"), "{out}");
    assert!(!out.contains("panicked"));

    let (code, out) = sublist(&["check-config", "/nonexistent/sublist.toml"]);
    assert_eq!(code, 1);
    assert!(out.contains("does not exist"), "{out}");
}

#[test]
fn migrate_creates_the_database_and_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let config = |key: &str| {
        format!(
            "[discord]\ntoken = \"t\"\n[store]\ndatabase = \"{}\"\nencryption_key = \"{key}\"\n\
             [[spotify.apps]]\nclient_id = \"c\"\nclient_secret = \"s\"\nredirect_uri = \"http://127.0.0.1:8888/callback\"\n",
            db.display()
        )
    };
    let good = write(&dir, "good.toml", &config(&"11".repeat(32)));
    let (code, out) = sublist(&["migrate", "--config", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("migration(s) applied"), "{out}");
    assert!(db.exists());

    let bad = write(&dir, "bad.toml", &config(&"22".repeat(32)));
    let (code, out) = sublist(&["migrate", "--config", &bad]);
    assert_eq!(code, 1);
    assert!(out.contains("encryption key does not match"), "{out}");
}

#[test]
fn the_demo_runs_the_whole_pipeline_offline() {
    let (code, out) = sublist(&["demo"]);
    assert_eq!(code, 0, "{out}");
    for layer in ["Mood", "Latin", "Style", "Drive"] {
        assert!(out.contains(&format!("Layer “{layer}”")), "{layer}: {out}");
    }
    assert!(out.contains("Liked Songs are 467 tracks"), "{out}");
    assert!(out.contains("Synced in 10 requests"), "{out}");
    assert!(out.contains("(a private playlist on Spotify)"), "{out}");
    assert!(out.contains("the void:"), "{out}");
    assert_eq!(
        out.matches("against the real playlists").count(),
        4,
        "{out}"
    );
}
