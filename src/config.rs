//! The configuration: a TOML file, overridden key by key from `SUBLIST_*` environment
//! variables, read into raw structs and validated once into the values the program uses.
//!
//! Environment keys use `__` between sections: `SUBLIST_DISCORD__TOKEN`,
//! `SUBLIST_STORE__ENCRYPTION_KEY`, `SUBLIST_SPOTIFY__APPS='[{client_id="…", …}]'`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use url::Url;

/// One thing wrong with the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `spotify.apps[0].client_id`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the configuration can't be used: every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub discord: DiscordConfig,
    pub spotify: SpotifyConfig,
    pub audio: AudioConfig,
    pub store: StoreConfig,
    pub web: WebConfig,
    pub learn: LearnConfig,
    pub jobs: JobsConfig,
    pub pipeline: PipelineConfig,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub token: SecretString,
    /// Where REST calls go instead of discord.com (a rate-limit-sharing proxy, a local server).
    pub api_base: Option<Url>,
    /// Register the slash commands in this server only (instant), rather than globally.
    pub guild_id: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SpotifyConfig {
    /// The Web API base, ending in `/v1/`.
    pub api_base_url: Url,
    /// The accounts service base (authorize and token endpoints).
    pub accounts_base_url: Url,
    pub apps: Vec<SpotifyApp>,
    pub max_retries: u32,
    pub request_timeout: Duration,
    /// Pages of Liked Songs read per sync by the pass that notices unliked tracks.
    pub full_pass_pages: u32,
}

/// One Spotify app (client id and secret). Each takes at most `user_cap` members.
#[derive(Debug, Clone)]
pub struct SpotifyApp {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: Url,
    pub user_cap: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioProvider {
    None,
    Reccobeats,
}

#[derive(Debug, Clone)]
pub struct AudioConfig {
    pub provider: AudioProvider,
    pub reccobeats_base_url: Url,
}

/// The encryption key for tokens at rest: 32 bytes.
pub type EncryptionKey = SecretBox<[u8; 32]>;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database: PathBuf,
    pub encryption_key: std::sync::Arc<EncryptionKey>,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub callback_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DevicePref {
    /// A real GPU when the `gpu` feature is built and one is found (for trainings of at least
    /// `learn.gpu_min_labels` labelled tracks), else the CPU. Never a software adapter.
    Auto,
    Cpu,
    /// A real GPU for every training, or a start-up error.
    Gpu,
    /// wgpu on a software adapter (Mesa's lavapipe or llvmpipe): the GPU code path run on the
    /// CPU, far slower than `cpu`. For tests and for trying that path without a GPU.
    WgpuSoftware,
}

#[derive(Debug, Clone)]
pub struct LearnConfig {
    pub device: DevicePref,
    /// With `auto` and a real GPU, smaller trainings run on the CPU.
    pub gpu_min_labels: usize,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Device worker threads; default one per device.
    pub device_workers: Option<usize>,
    pub network_concurrency: usize,
    pub max_attempts: u32,
    pub train_timeout: Duration,
    pub job_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub sync_interval: Duration,
    pub retrain_after_labels: u32,
    pub refresh_cooldown: Duration,
}

// ---- raw, as written in the file ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    discord: RawDiscord,
    #[serde(default)]
    spotify: RawSpotify,
    #[serde(default)]
    audio: RawAudio,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    learn: RawLearn,
    #[serde(default)]
    jobs: RawJobs,
    #[serde(default)]
    pipeline: RawPipeline,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    token: Option<SecretString>,
    api_base: Option<String>,
    guild_id: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpotify {
    api_base_url: Option<String>,
    accounts_base_url: Option<String>,
    #[serde(default)]
    apps: Vec<RawApp>,
    max_retries: Option<u32>,
    request_timeout_secs: Option<u64>,
    full_pass_pages: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    redirect_uri: Option<String>,
    user_cap: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudio {
    provider: Option<AudioProvider>,
    reccobeats_base_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    database: Option<PathBuf>,
    encryption_key: Option<SecretString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<String>,
    callback_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLearn {
    device: Option<DevicePref>,
    gpu_min_labels: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    device_workers: Option<usize>,
    network_concurrency: Option<usize>,
    max_attempts: Option<u32>,
    train_timeout_secs: Option<u64>,
    job_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    sync_interval_secs: Option<u64>,
    retrain_after_labels: Option<u32>,
    refresh_cooldown_secs: Option<u64>,
}

/// The default of `learn.gpu_min_labels`.
pub const GPU_MIN_LABELS: usize = 2000;

/// The prefix of environment variables that override the file.
pub const ENV_PREFIX: &str = "SUBLIST_";

impl Config {
    /// Reads `path` (if given) and the environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError(vec![Problem {
                    key: "(file)".into(),
                    message: format!("{} does not exist", path.display()),
                }]));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::from_figment(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
    }

    /// Validates a configuration given as TOML text (no environment), for tests and tools.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let raw: Raw = figment.extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| Problem {
                        key: describe_path(&e.path),
                        message: describe_kind(&e.kind),
                    })
                    .collect(),
            )
        })?;
        raw.validate()
    }
}

fn describe_path(path: &[String]) -> String {
    if path.is_empty() {
        return "(top level)".into();
    }
    let mut out = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(field, expected) => {
            format!(
                "unknown key `{field}`; expected one of: {}",
                expected.join(", ")
            )
        }
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::UnknownVariant(found, expected) => {
            format!("`{found}` is not one of: {}", expected.join(", "))
        }
        Kind::MissingField(field) => format!("missing key `{field}`"),
        other => other.to_string(),
    }
}

/// Collects problems while validating.
struct Check(Vec<Problem>);

impl Check {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn required<T>(&mut self, key: &str, value: Option<T>, hint: &str) -> Option<T> {
        if value.is_none() {
            self.problem(key, format!("missing; {hint}"));
        }
        value
    }

    fn url(&mut self, key: &str, value: Option<String>, default: &str) -> Option<Url> {
        let text = value.unwrap_or_else(|| default.to_string());
        match Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(_) => {
                self.problem(key, format!("`{text}` must be an http or https URL"));
                None
            }
            Err(e) => {
                self.problem(key, format!("`{text}` is not a URL ({e})"));
                None
            }
        }
    }

    fn secs(&mut self, key: &str, value: Option<u64>, default: u64) -> Duration {
        let v = value.unwrap_or(default);
        if v == 0 {
            self.problem(key, "must be at least 1 second");
        }
        Duration::from_secs(v)
    }
}

/// Parses a 32-byte key written in base64 (standard or URL-safe) or hex.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "is not valid hex".to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .map_err(|_| "is neither base64 nor hex".to_string())?
    };
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes, found {}", bytes.len()))
}

/// A new random key, base64-encoded, for `sublist gen-key`.
pub fn generate_key() -> String {
    let key: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl Raw {
    fn validate(self) -> Result<Config, ConfigError> {
        let mut c = Check(Vec::new());

        let token = c.required(
            "discord.token",
            self.discord.token,
            "the bot token from the Discord developer portal (Bot → Reset Token)",
        );
        if let Some(t) = &token
            && t.expose_secret().trim().is_empty()
        {
            c.problem("discord.token", "is empty");
        }
        let api_base = match self.discord.api_base {
            Some(s) => c.url("discord.api_base", Some(s), ""),
            None => None,
        };

        let api_base_url = c.url(
            "spotify.api_base_url",
            self.spotify.api_base_url,
            "https://api.spotify.com/v1/",
        );
        let accounts_base_url = c.url(
            "spotify.accounts_base_url",
            self.spotify.accounts_base_url,
            "https://accounts.spotify.com/",
        );
        if self.spotify.apps.is_empty() {
            c.problem(
                "spotify.apps",
                "missing; add at least one [[spotify.apps]] with client_id, client_secret and redirect_uri",
            );
        }
        let mut apps = Vec::new();
        for (i, app) in self.spotify.apps.into_iter().enumerate() {
            let key = |k: &str| format!("spotify.apps[{i}].{k}");
            let client_id = c.required(
                &key("client_id"),
                app.client_id,
                "the Client ID from the Spotify developer dashboard",
            );
            let client_secret = c.required(
                &key("client_secret"),
                app.client_secret,
                "the Client secret from the Spotify developer dashboard",
            );
            let redirect = c.required(
                &key("redirect_uri"),
                app.redirect_uri,
                "e.g. http://127.0.0.1:8888/callback, as registered in the app",
            );
            let redirect_uri = redirect.and_then(|r| c.url(&key("redirect_uri"), Some(r), ""));
            if let Some(u) = &redirect_uri
                && let Err(why) = check_redirect_uri(u)
            {
                c.problem(key("redirect_uri"), why);
            }
            let user_cap = app.user_cap.unwrap_or(5);
            if user_cap == 0 {
                c.problem(key("user_cap"), "must be at least 1");
            }
            if let (Some(client_id), Some(client_secret), Some(redirect_uri)) =
                (client_id, client_secret, redirect_uri)
            {
                if apps.iter().any(|a: &SpotifyApp| a.client_id == client_id) {
                    c.problem(key("client_id"), "appears twice");
                }
                apps.push(SpotifyApp {
                    client_id,
                    client_secret,
                    redirect_uri,
                    user_cap,
                });
            }
        }

        let audio_provider = self.audio.provider.unwrap_or(AudioProvider::None);
        let reccobeats_base_url = c.url(
            "audio.reccobeats_base_url",
            self.audio.reccobeats_base_url,
            "https://api.reccobeats.com/v1/",
        );

        let key_text = c.required(
            "store.encryption_key",
            self.store.encryption_key,
            "32 random bytes in base64, e.g. from `sublist gen-key`",
        );
        let encryption_key = key_text.and_then(|k| match parse_key(k.expose_secret()) {
            Ok(bytes) => Some(std::sync::Arc::new(SecretBox::new(Box::new(bytes)))),
            Err(why) => {
                c.problem("store.encryption_key", why);
                None
            }
        });

        let listen_text = self.web.listen.unwrap_or_else(|| "127.0.0.1:8888".into());
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                c.problem(
                    "web.listen",
                    format!("`{listen_text}` is not an address like 127.0.0.1:8888"),
                );
                None
            }
        };
        let callback_path = self.web.callback_path.unwrap_or_else(|| "/callback".into());
        if !callback_path.starts_with('/') {
            c.problem("web.callback_path", "must start with /");
        }

        let network_concurrency = self.jobs.network_concurrency.unwrap_or(4);
        if network_concurrency == 0 {
            c.problem("jobs.network_concurrency", "must be at least 1");
        }
        if self.jobs.device_workers == Some(0) {
            c.problem("jobs.device_workers", "must be at least 1");
        }
        let max_attempts = self.jobs.max_attempts.unwrap_or(3);
        if max_attempts == 0 {
            c.problem("jobs.max_attempts", "must be at least 1");
        }
        let jobs = JobsConfig {
            device_workers: self.jobs.device_workers,
            network_concurrency,
            max_attempts,
            train_timeout: c.secs("jobs.train_timeout_secs", self.jobs.train_timeout_secs, 600),
            job_timeout: c.secs("jobs.job_timeout_secs", self.jobs.job_timeout_secs, 300),
            shutdown_grace: c.secs(
                "jobs.shutdown_grace_secs",
                self.jobs.shutdown_grace_secs,
                20,
            ),
        };
        let pipeline = PipelineConfig {
            sync_interval: c.secs(
                "pipeline.sync_interval_secs",
                self.pipeline.sync_interval_secs,
                300,
            ),
            retrain_after_labels: self.pipeline.retrain_after_labels.unwrap_or(10),
            refresh_cooldown: c.secs(
                "pipeline.refresh_cooldown_secs",
                self.pipeline.refresh_cooldown_secs,
                60,
            ),
        };
        let request_timeout = c.secs(
            "spotify.request_timeout_secs",
            self.spotify.request_timeout_secs,
            20,
        );

        if !c.0.is_empty() {
            return Err(ConfigError(c.0));
        }
        // Every `None` above recorded a problem, so these are all present.
        let (
            Some(token),
            Some(api_base_url),
            Some(accounts_base_url),
            Some(reccobeats_base_url),
            Some(encryption_key),
            Some(listen),
        ) = (
            token,
            api_base_url,
            accounts_base_url,
            reccobeats_base_url,
            encryption_key,
            listen,
        )
        else {
            return Err(ConfigError(vec![Problem {
                key: "(internal)".into(),
                message: "validation lost a value".into(),
            }]));
        };
        Ok(Config {
            discord: DiscordConfig {
                token,
                api_base,
                guild_id: self.discord.guild_id,
            },
            spotify: SpotifyConfig {
                api_base_url,
                accounts_base_url,
                apps,
                max_retries: self.spotify.max_retries.unwrap_or(4),
                request_timeout,
                full_pass_pages: self.spotify.full_pass_pages.unwrap_or(4),
            },
            audio: AudioConfig {
                provider: audio_provider,
                reccobeats_base_url,
            },
            store: StoreConfig {
                database: self
                    .store
                    .database
                    .unwrap_or_else(|| PathBuf::from("sublist.db")),
                encryption_key,
            },
            web: WebConfig {
                listen,
                callback_path,
            },
            learn: LearnConfig {
                device: self.learn.device.unwrap_or(DevicePref::Auto),
                gpu_min_labels: self.learn.gpu_min_labels.unwrap_or(GPU_MIN_LABELS),
            },
            jobs,
            pipeline,
        })
    }
}

/// Spotify accepts HTTPS redirect URIs, or plain HTTP on a loopback IP literal only.
fn check_redirect_uri(u: &Url) -> Result<(), String> {
    match (u.scheme(), u.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(url::Host::Ipv4(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(url::Host::Ipv6(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(url::Host::Domain("localhost"))) => Err(
            "Spotify refuses `localhost` in redirect URIs; use http://127.0.0.1:PORT/… instead"
                .into(),
        ),
        _ => Err("must be https://…, or http:// on a loopback address like 127.0.0.1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn full() -> String {
        format!(
            r#"
[discord]
token = "discord-token-value"
[store]
encryption_key = "{KEY}"
[[spotify.apps]]
client_id = "abc"
client_secret = "shh-secret"
redirect_uri = "http://127.0.0.1:8888/callback"
"#
        )
    }

    fn keys(e: ConfigError) -> Vec<String> {
        e.0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_full_config_validates_with_defaults() {
        let c = Config::from_toml(&full()).unwrap();
        assert_eq!(c.spotify.apps[0].user_cap, 5);
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:8888");
        assert_eq!(c.learn.device, DevicePref::Auto);
        assert_eq!(c.learn.gpu_min_labels, GPU_MIN_LABELS);
        assert_eq!(
            c.spotify.api_base_url.as_str(),
            "https://api.spotify.com/v1/"
        );
    }

    #[test]
    fn missing_keys_are_all_listed() {
        let e = Config::from_toml("[[spotify.apps]]\nredirect_uri = \"https://x.example/cb\"")
            .unwrap_err();
        assert_eq!(
            keys(e),
            [
                "discord.token",
                "spotify.apps[0].client_id",
                "spotify.apps[0].client_secret",
                "store.encryption_key"
            ]
        );
    }

    #[test]
    fn a_typo_is_named() {
        let e = Config::from_toml(&(full() + "[web]\nlisen = \"1.2.3.4:5\"\n")).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].key, "web.lisen");
        assert!(e.0[0].message.contains("unknown key `lisen`"), "{}", e.0[0]);
        assert!(e.0[0].message.contains("listen"));
    }

    #[test]
    fn a_wrong_type_is_named() {
        let e = Config::from_toml(&(full() + "[jobs]\nmax_attempts = \"three\"\n")).unwrap_err();
        assert_eq!(e.0[0].key, "jobs.max_attempts");
        assert!(e.0[0].message.contains("expected"), "{}", e.0[0]);
    }

    #[test]
    fn the_software_adapter_is_a_device_named_on_purpose() {
        let text = full() + "[learn]\ndevice = \"wgpu-software\"\ngpu_min_labels = 0\n";
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.learn.device, DevicePref::WgpuSoftware);
        assert_eq!(c.learn.gpu_min_labels, 0);
        let e = Config::from_toml(&(full() + "[learn]\ndevice = \"software\"\n")).unwrap_err();
        assert_eq!(e.0[0].key, "learn.device");
        assert!(e.0[0].message.contains("wgpu-software"), "{}", e.0[0]);
    }

    #[test]
    fn bad_values_are_named() {
        let text = full()
            .replace(KEY, "c2hvcnQ=")
            .replace("127.0.0.1", "localhost")
            + "[web]\nlisten = \"nowhere\"\n[learn]\ndevice = \"tpu\"\n";
        let e = Config::from_toml(&text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("learn.device"), "{msg}");
        let text = full()
            .replace(KEY, "c2hvcnQ=")
            .replace("127.0.0.1", "localhost")
            + "[web]\nlisten = \"nowhere\"\n";
        let e = Config::from_toml(&text).unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            keys(e),
            [
                "spotify.apps[0].redirect_uri",
                "store.encryption_key",
                "web.listen"
            ]
        );
        assert!(msg.contains("must be 32 bytes, found 5"), "{msg}");
        assert!(msg.contains("refuses `localhost`"), "{msg}");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Config::from_toml(&full()).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("discord-token-value"));
        assert!(!debug.contains("shh-secret"));
        assert!(!debug.contains(KEY));
    }

    #[test]
    fn keys_parse_from_base64_and_hex() {
        assert_eq!(
            parse_key(KEY).unwrap(),
            *b"0123456789abcdef0123456789abcdef"
        );
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert!(parse_key("not a key!").is_err());
        assert_eq!(parse_key(&generate_key()).unwrap().len(), 32);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", &full())?;
            jail.set_env("SUBLIST_DISCORD__TOKEN", "from-env");
            jail.set_env("SUBLIST_JOBS__MAX_ATTEMPTS", "7");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.discord.token.expose_secret(), "from-env");
            assert_eq!(c.jobs.max_attempts, 7);
            Ok(())
        });
    }
}
