//! The `sublist` binary as an operator uses it.

use std::path::{Path, PathBuf};
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

/// Runs `sublist` from an empty folder, as someone who installed only the binary would.
fn sublist_elsewhere(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sublist"))
        .args(args)
        .current_dir(dir.path())
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

/// The files of the repository: the tracked ones where git knows the folder, else every file
/// under it but build outputs.
fn repository_files(root: &Path) -> Vec<PathBuf> {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(out) = listed {
        return out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .filter(|p| p.is_file())
            .collect();
    }
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != ".git" && name != "target" {
                folders.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files
}

/// Resolves `rel` (made of `..`, `.` and names) against `folder`; `None` if it climbs above
/// `root`.
fn resolve(root: &Path, folder: &Path, rel: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = folder
        .strip_prefix(root)
        .ok()?
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name.to_string()),
        }
    }
    Some(parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// A clone works on its own: no file of the repository names a path outside it. Every path
/// that climbs with `..` must land, from the folder of the file that names it, on something
/// the repository has, and no file names the folder beside the clone that the data set and
/// the API descriptions were copied from.
#[test]
fn no_file_of_the_repository_names_a_path_outside_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copied_from: Vec<String> = ["spec", "data", "docs"]
        .iter()
        .map(|d| format!("{}/{d}/", "shared"))
        .collect();
    let up = "../";
    let mut problems = Vec::new();
    let files = repository_files(root);
    assert!(files.iter().any(|f| f.ends_with("Cargo.toml")), "{files:?}");
    for file in &files {
        if file.file_name().is_some_and(|n| n == "Cargo.lock") {
            continue;
        }
        // Binary files (the compressed data set) name no paths.
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        for pattern in &copied_from {
            if text.contains(pattern.as_str()) {
                problems.push(format!("{shown} names {pattern}"));
            }
        }
        let folder = file.parent().unwrap_or(root);
        let mut from = 0;
        let in_path = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
        while let Some(at) = text[from..].find(up).map(|i| i + from) {
            // The whole path the climb sits in, from its first path character on.
            let start = text[..at]
                .char_indices()
                .rev()
                .find(|(_, c)| !in_path(*c))
                .map_or(0, |(i, c)| i + c.len_utf8());
            let token_end = text[at..]
                .find(|c: char| !in_path(c))
                .map_or(text.len(), |i| i + at);
            let token = &text[start..token_end];
            from = token_end.max(at + up.len());
            match resolve(root, folder, token) {
                Some(target) if target.exists() => {}
                Some(_) => problems.push(format!("{shown} names {token}, not in the repository")),
                None => problems.push(format!("{shown} names {token}, outside the repository")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn eval_and_bench_run_on_the_built_in_data_set_from_any_folder() {
    let (code, out) = sublist_elsewhere(&[
        "eval",
        "--users",
        "1",
        "--active-users",
        "0",
        "--cases",
        "MC",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("28356 tracks, 471 playlists (295 eligible)"),
        "{out}"
    );
    for cell in [
        "| MC | runtime | 4 | 5 | sublist | accuracy |",
        "| MC | runtime+audio | 8 | 25 | sublist | accuracy |",
    ] {
        assert!(out.contains(cell), "{cell}: {out}");
    }

    let (code, out) = sublist_elsewhere(&[
        "bench", "--sizes", "300", "--score", "500", "--device", "cpu",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("| cpu (flex) | train one layer model | 300 |"),
        "{out}"
    );
    assert!(
        out.contains(
            "| cpu (flex) | score (model trained on 300 here; features on the CPU) | 500 |"
        ),
        "{out}"
    );
}

#[test]
fn a_data_file_that_is_not_there_is_named() {
    let (code, out) = sublist_elsewhere(&["eval", "--data", "nowhere.csv.gz"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: opening nowhere.csv.gz"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

/// The image builds from what the Dockerfile copies: Cargo.toml, Cargo.lock, and every file
/// the compiler reads besides the sources (`include_str!`, `include_bytes!`, `migrate!`) lies
/// under a copied path; every copied path exists.
#[test]
fn the_dockerfile_copies_every_path_the_build_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let build_stage = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    let mut copied: Vec<PathBuf> = Vec::new();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            let path = root.join(source);
            assert!(
                path.exists(),
                "the Dockerfile copies {source}, which is not there"
            );
            if build_stage.contains(line) {
                copied.push(path);
            }
        }
    }
    let mut reads = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for file in repository_files(root) {
        let in_src = file.starts_with(root.join("src"));
        if !in_src || file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let folder = file.parent().unwrap();
        for (mac, base) in [
            ("include_str!(\"", folder),
            ("include_bytes!(\"", folder),
            ("migrate!(\"", root),
        ] {
            for piece in text.split(mac).skip(1) {
                let rel = piece.split('"').next().unwrap();
                let path = resolve(root, base, rel).unwrap();
                assert!(
                    path.exists(),
                    "{} reads {rel}, which is not there",
                    file.display()
                );
                reads.push(path);
            }
        }
        reads.push(file);
    }
    assert!(reads.iter().any(|p| p.ends_with("spotify_songs.csv.gz")));
    for path in reads {
        assert!(
            copied.iter().any(|c| path.starts_with(c)),
            "the image build needs {}, which the Dockerfile does not copy",
            path.strip_prefix(root).unwrap().display()
        );
    }
}
