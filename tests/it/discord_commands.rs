//! The slash-command schema the bot registers: Discord's limits, Discord's OpenAPI
//! description, and a snapshot that makes every change to it visible in review.
//! Set `UPDATE_SNAPSHOTS=1` to rewrite the snapshot after an intended change.

use serde_json::Value;

use crate::openapi::Spec;

const SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/snapshots/discord_commands.json"
);

fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=32).contains(&n)
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn text_len(v: &Value, key: &str) -> usize {
    v[key].as_str().map_or(0, |s| s.chars().count())
}

/// Checks one option (or subcommand) and returns the characters it counts toward the
/// per-command total.
fn check_option(path: &str, o: &Value, problems: &mut Vec<String>) -> usize {
    let name = o["name"].as_str().unwrap_or("");
    let path = format!("{path} {name}");
    if !valid_name(name) {
        problems.push(format!(
            "{path}: option name {name:?} breaks ^[-_a-z0-9]{{1,32}}$"
        ));
    }
    let desc = text_len(o, "description");
    if !(1..=100).contains(&desc) {
        problems.push(format!(
            "{path}: description is {desc} characters (1 to 100)"
        ));
    }
    let mut total = name.chars().count() + desc;
    if let Some(choices) = o["choices"].as_array() {
        if choices.len() > 25 {
            problems.push(format!("{path}: {} choices (at most 25)", choices.len()));
        }
        for c in choices {
            let n = text_len(c, "name");
            if !(1..=100).contains(&n) {
                problems.push(format!("{path}: choice name is {n} characters (1 to 100)"));
            }
            total += n + c["value"].as_str().map_or(0, |s| s.chars().count());
        }
    }
    if let Some(options) = o["options"].as_array() {
        total += check_options(&path, options, problems);
    }
    total
}

fn check_options(path: &str, options: &[Value], problems: &mut Vec<String>) -> usize {
    if options.len() > 25 {
        problems.push(format!("{path}: {} options (at most 25)", options.len()));
    }
    let mut seen_optional = false;
    let mut total = 0;
    for o in options {
        let required = o["required"].as_bool().unwrap_or(false);
        let is_sub = matches!(o["type"].as_u64(), Some(1) | Some(2));
        if !is_sub {
            if required && seen_optional {
                problems.push(format!(
                    "{path}: required option {} after an optional one",
                    o["name"]
                ));
            }
            seen_optional |= !required;
        }
        total += check_option(path, o, problems);
    }
    total
}

#[test]
fn the_command_schema_keeps_discords_limits_and_spec() {
    let schema = sublist::discord::command_schema();
    let commands = schema.as_array().expect("a list of commands");
    assert!(commands.len() <= 100, "at most 100 global chat commands");
    let mut problems = Vec::new();
    for c in commands {
        let name = c["name"].as_str().unwrap_or("");
        if !valid_name(name) {
            problems.push(format!("/{name}: name breaks ^[-_a-z0-9]{{1,32}}$"));
        }
        let desc = text_len(c, "description");
        if !(1..=100).contains(&desc) {
            problems.push(format!(
                "/{name}: description is {desc} characters (1 to 100)"
            ));
        }
        let options = c["options"].as_array().cloned().unwrap_or_default();
        let total = name.chars().count()
            + desc
            + check_options(&format!("/{name}"), &options, &mut problems);
        if total > 4000 {
            problems.push(format!("/{name}: {total} characters in all (at most 4000)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let spec = Spec::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/spec/discord-openapi.json"
    ))
    .expect("Discord's OpenAPI file loads");
    spec.validate_request("PUT", "/applications/1/commands", &schema)
        .unwrap_or_else(|e| panic!("{e}"));

    let pretty = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &pretty).unwrap();
    }
    let stored = std::fs::read_to_string(SNAPSHOT)
        .expect("the snapshot exists (run with UPDATE_SNAPSHOTS=1 to write it)");
    assert!(
        stored == pretty,
        "the command schema changed; review the diff and run with UPDATE_SNAPSHOTS=1 to accept it"
    );
}

#[test]
fn the_limit_checks_catch_what_discord_refuses() {
    let mut problems = Vec::new();
    let bad = serde_json::json!([
        {"name": "Bad Name", "description": "", "type": 3},
        {"name": "ok", "description": "x".repeat(101), "type": 3, "required": true}
    ]);
    check_options("/t", bad.as_array().unwrap(), &mut problems);
    assert_eq!(problems.len(), 4, "{problems:?}");
}
