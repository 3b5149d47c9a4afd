//! Checks JSON bodies against an official OpenAPI description (OpenAPI 3.0 or 3.1).
//!
//! `Spec::load` reads a YAML or JSON file; for OpenAPI 3.0 it rewrites `nullable: true` into a
//! type that admits null (and boolean `exclusiveMinimum`/`exclusiveMaximum` into numbers) so a
//! JSON Schema 2020-12 validator reads it as the spec means it. The whole document is
//! registered as one resource, so every `$ref` resolves against it. Paths may be given as the
//! template (`/playlists/{playlist_id}/items`) or as a concrete path (`/playlists/abc/items`);
//! a trailing slash is ignored.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

const BASE: &str = "https://openapi.invalid/spec.json";

/// A loaded OpenAPI description with its compiled validators cached per operation.
pub struct Spec {
    doc: Value,
    cache: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Spec {
    /// Reads an OpenAPI file (`.json`, or YAML otherwise).
    pub fn load(path: impl AsRef<Path>) -> Result<Spec, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc: Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        Spec::from_value(doc)
    }

    /// Takes an already parsed OpenAPI document.
    pub fn from_value(mut doc: Value) -> Result<Spec, String> {
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or("not an OpenAPI document: no `openapi` version")?
            .to_string();
        if version.starts_with("3.0") {
            upgrade_30(&mut doc);
        } else if !version.starts_with("3.1") {
            return Err(format!("unsupported OpenAPI version {version}"));
        }
        Ok(Spec {
            doc,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The path template in the spec that `path` names (itself, or a concrete path matching a
    /// template segment by segment).
    pub fn find_path(&self, path: &str) -> Option<String> {
        let paths = self.doc.get("paths")?.as_object()?;
        let path = normalise(path);
        if paths.contains_key(&path) {
            return Some(path);
        }
        let want: Vec<&str> = path.split('/').collect();
        paths
            .keys()
            .filter(|template| {
                let have: Vec<&str> = template.split('/').collect();
                have.len() == want.len()
                    && have
                        .iter()
                        .zip(&want)
                        .all(|(h, w)| h == w || (h.starts_with('{') && h.ends_with('}')))
            })
            // Prefer the template with the most literal segments (`/me/tracks` over `/{x}/tracks`).
            .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
            .cloned()
    }

    /// Checks a response body against the schema the spec gives for this operation and status
    /// (exact code, then `4XX`-style ranges, then `default`).
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let (template, op_ptr) = self.operation(method, path)?;
        let responses = self
            .doc
            .pointer(&format!("{op_ptr}/responses"))
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{method} {template}: no responses in the spec"))?;
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let key = [code.as_str(), range.as_str(), "default"]
            .into_iter()
            .find(|k| responses.contains_key(*k))
            .ok_or_else(|| {
                format!(
                    "{method} {template}: status {status} is not documented (documented: {})",
                    responses.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
        let mut ptr = format!("{op_ptr}/responses/{}", escape(key));
        ptr = self.follow_ref(&ptr)?;
        let what = format!("{method} {template} -> {status}");
        self.validate_content(&ptr, body, &what)
    }

    /// Checks a JSON request body against the operation's `requestBody` schema.
    pub fn validate_request(&self, method: &str, path: &str, body: &Value) -> Result<(), String> {
        let (template, op_ptr) = self.operation(method, path)?;
        let ptr = format!("{op_ptr}/requestBody");
        if self.doc.pointer(&ptr).is_none() {
            return Err(format!(
                "{method} {template}: the spec documents no request body"
            ));
        }
        let ptr = self.follow_ref(&ptr)?;
        self.validate_content(&ptr, body, &format!("{method} {template} request"))
    }

    /// Checks a value against a named schema in `components/schemas`.
    pub fn validate_schema(&self, name: &str, value: &Value) -> Result<(), String> {
        let ptr = format!("/components/schemas/{}", escape(name));
        if self.doc.pointer(&ptr).is_none() {
            return Err(format!("no schema named {name}"));
        }
        self.check(&ptr, value, name)
    }

    fn operation(&self, method: &str, path: &str) -> Result<(String, String), String> {
        let template = self
            .find_path(path)
            .ok_or_else(|| format!("{path}: no such path in the spec"))?;
        let method = method.to_ascii_lowercase();
        let ptr = format!("/paths/{}/{}", escape(&template), method);
        if self.doc.pointer(&ptr).is_none() {
            return Err(format!(
                "{} {template}: no such operation",
                method.to_uppercase()
            ));
        }
        Ok((template, ptr))
    }

    /// Follows `$ref`s (to `components/responses`, `components/requestBodies`) until a value
    /// without one; returns its pointer.
    fn follow_ref(&self, ptr: &str) -> Result<String, String> {
        let mut ptr = ptr.to_string();
        for _ in 0..16 {
            let v = self
                .doc
                .pointer(&ptr)
                .ok_or_else(|| format!("dangling reference {ptr}"))?;
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    ptr = r
                        .strip_prefix('#')
                        .ok_or_else(|| format!("external reference {r} is not supported"))?
                        .to_string()
                }
                None => return Ok(ptr),
            }
        }
        Err(format!("reference loop at {ptr}"))
    }

    fn validate_content(&self, ptr: &str, body: &Value, what: &str) -> Result<(), String> {
        let content = self.doc.pointer(&format!("{ptr}/content"));
        let Some(content) = content.and_then(Value::as_object) else {
            return match body {
                Value::Null => Ok(()),
                _ => Err(format!("{what}: the spec documents no body, got {body}")),
            };
        };
        let media = content
            .keys()
            .find(|k| k.starts_with("application/json"))
            .ok_or_else(|| format!("{what}: no JSON media type documented"))?;
        let schema_ptr = format!("{ptr}/content/{}/schema", escape(media));
        if self.doc.pointer(&schema_ptr).is_none() {
            return Ok(());
        }
        self.check(&schema_ptr, body, what)
    }

    fn check(&self, schema_ptr: &str, value: &Value, what: &str) -> Result<(), String> {
        let validator = self.validator(schema_ptr)?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .take(10)
            .map(|e| format!("  at {}: {}", e.instance_path, e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what} does not match the spec:\n{}",
                errors.join("\n")
            ))
        }
    }

    fn validator(&self, schema_ptr: &str) -> Result<Arc<jsonschema::Validator>, String> {
        if let Some(v) = self
            .cache
            .lock()
            .map_err(|e| e.to_string())?
            .get(schema_ptr)
        {
            return Ok(v.clone());
        }
        let resource = jsonschema::Draft::Draft202012.create_resource(self.doc.clone());
        // A URI fragment cannot hold `{`, `}` or spaces: percent-encode them.
        let fragment = schema_ptr
            .replace('%', "%25")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace(' ', "%20");
        let schema = serde_json::json!({ "$ref": format!("{BASE}#{fragment}") });
        let validator = jsonschema::draft202012::options()
            .with_resource(BASE, resource)
            .build(&schema)
            .map_err(|e| format!("cannot compile the schema at {schema_ptr}: {e}"))?;
        let validator = Arc::new(validator);
        self.cache
            .lock()
            .map_err(|e| e.to_string())?
            .insert(schema_ptr.to_string(), validator.clone());
        Ok(validator)
    }
}

fn normalise(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

/// JSON Pointer escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Rewrites OpenAPI 3.0 schema dialect into JSON Schema 2020-12, in place.
fn upgrade_30(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                upgrade_30(v);
            }
            upgrade_schema_object(map);
        }
        Value::Array(items) => items.iter_mut().for_each(upgrade_30),
        _ => {}
    }
}

fn upgrade_schema_object(map: &mut Map<String, Value>) {
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(on)) = map.get(flag).cloned() {
            map.remove(flag);
            if on && let Some(b) = map.remove(bound) {
                map.insert(flag.into(), b);
            }
        }
    }
    if map.get("nullable") != Some(&Value::Bool(true)) {
        return;
    }
    map.remove("nullable");
    if let Some(ty) = map.get_mut("type") {
        match ty {
            Value::String(s) => *ty = Value::Array(vec![Value::String(s.clone()), "null".into()]),
            Value::Array(list) if !list.contains(&Value::from("null")) => list.push("null".into()),
            _ => {}
        }
        if let Some(Value::Array(list)) = map.get_mut("enum")
            && !list.contains(&Value::Null)
        {
            list.push(Value::Null);
        }
    } else {
        // No `type` (e.g. an `allOf` or `$ref`): admit null beside whatever the schema says.
        let inner = Value::Object(std::mem::take(map));
        map.insert(
            "anyOf".into(),
            Value::Array(vec![inner, serde_json::json!({ "type": "null" })]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn spotify() -> Spec {
        Spec::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/spec/spotify-openapi.yml"
        ))
        .expect("the Spotify OpenAPI file loads")
    }

    fn page(items: Value) -> Value {
        json!({"href": "https://api.spotify.com/v1/me/playlists?offset=0&limit=20",
               "items": items, "limit": 20, "next": null, "offset": 0, "previous": null, "total": 0})
    }

    #[test]
    fn spotify_nullable_next_and_previous_validate() {
        let spec = spotify();
        spec.validate_response("GET", "/me/playlists", 200, &page(json!([])))
            .unwrap();
        // A concrete path with a trailing slash finds its template.
        assert_eq!(spec.find_path("/me/").as_deref(), Some("/me"));
        assert_eq!(
            spec.find_path("/playlists/37i9dQZF1DXcBWIGoYBM5M/items")
                .as_deref(),
            Some("/playlists/{playlist_id}/items")
        );
    }

    #[test]
    fn spotify_wrong_bodies_are_refused_with_the_reason() {
        let spec = spotify();
        let mut bad = page(json!([]));
        bad["total"] = json!("many");
        let err = spec
            .validate_response("GET", "/me/playlists", 200, &bad)
            .unwrap_err();
        assert!(err.contains("/total"), "{err}");
        let mut missing = page(json!([]));
        missing.as_object_mut().unwrap().remove("next");
        assert!(
            spec.validate_response("GET", "/me/playlists", 200, &missing)
                .is_err()
        );
        // An error body must carry status and message.
        let err_body = json!({"error": {"status": 429}});
        assert!(
            spec.validate_response("GET", "/me/tracks", 429, &err_body)
                .is_err()
        );
        let ok_err = json!({"error": {"status": 429, "message": "API rate limit exceeded"}});
        spec.validate_response("GET", "/me/tracks", 429, &ok_err)
            .unwrap();
        // Undocumented statuses and unknown paths are errors, not passes.
        assert!(
            spec.validate_response("GET", "/me/tracks", 418, &ok_err)
                .is_err()
        );
        assert!(
            spec.validate_response("GET", "/nowhere", 200, &json!({}))
                .is_err()
        );
    }

    #[test]
    fn spotify_request_bodies_validate() {
        let spec = spotify();
        spec.validate_request(
            "POST",
            "/playlists/abc/items",
            &json!({"uris": ["spotify:track:4iV5W9uYEdYUVa79Axb7Rh"]}),
        )
        .unwrap();
        assert!(
            spec.validate_request("POST", "/playlists/abc/items", &json!({"uris": "x"}))
                .is_err()
        );
    }

    #[test]
    fn discord_31_spec_loads_and_validates() {
        let spec = Spec::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/spec/discord-openapi.json"
        ))
        .expect("the Discord OpenAPI file loads");
        assert_eq!(
            spec.find_path("/applications/123/commands").as_deref(),
            Some("/applications/{application_id}/commands")
        );
        let path = "/interactions/1/tok/callback";
        spec.validate_request(
            "POST",
            path,
            &json!({"type": 4, "data": {"content": "hi", "flags": 64}}),
        )
        .unwrap();
        assert!(
            spec.validate_request("POST", path, &json!({"type": "reply"}))
                .is_err()
        );
        assert!(spec.validate_schema("NoSuchSchema", &json!({})).is_err());
    }
}
