//! A local Discord for end-to-end tests: a REST server that answers the calls the bot makes
//! (recording each one), and a WebSocket gateway that says HELLO, takes IDENTIFY, sends READY
//! and then whatever dispatches a test asks for. serenity's HTTP client is pointed at the REST
//! server through its proxy setting; the REST server hands out the gateway's address.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub const APP_ID: u64 = 700_000_000_000_000_001;
pub const BOT_ID: u64 = 700_000_000_000_000_001;
pub const GUILD_ID: u64 = 710_000_000_000_000_001;
pub const CHANNEL_ID: u64 = 720_000_000_000_000_001;
/// DM channels get the recipient's id plus this.
pub const DM_OFFSET: u64 = 1_000;
const TIMESTAMP: &str = "2026-11-27T12:00:00.000000+00:00";

/// One request the bot sent.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path after `/api/v10`, percent-decoded.
    pub path: String,
    pub body: Value,
}

struct Shared {
    requests: std::sync::Mutex<Vec<Recorded>>,
    /// Woken at each new request.
    arrived: tokio::sync::Notify,
    gateway_url: String,
    session: Mutex<Option<mpsc::UnboundedSender<String>>>,
    seq: AtomicU64,
    next_id: AtomicU64,
    sessions_started: AtomicU64,
    /// Channels where posting a message is refused as Discord refuses closed DMs.
    closed: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Interactions already answered: a second callback is refused, as Discord refuses it.
    answered: std::sync::Mutex<std::collections::HashSet<String>>,
    /// How many of the next edits of an original interaction response fail with a 500.
    failing_original_edits: AtomicU64,
    /// Messages posted in channels, by id, as they stand now.
    messages: std::sync::Mutex<std::collections::BTreeMap<u64, FakeMessage>>,
    /// Channels that were deleted: every call on them answers "Unknown Channel".
    deleted_channels: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Injected failures: (method, path fragment, status, Discord error code, times left).
    failing: std::sync::Mutex<Vec<Injected>>,
    /// The message each dispatched component interaction was on (an update answer edits it).
    component_messages: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    /// The number of the gateway session now connected.
    session_no: AtomicU64,
}

/// An injected failure: (method, path fragment, status, Discord error code, times left).
type Injected = (String, String, u16, u64, u32);

/// A message the bot posted in a channel, as it stands after its edits.
#[derive(Clone, Debug)]
pub struct FakeMessage {
    pub id: u64,
    pub channel: u64,
    pub content: String,
    pub embeds: Value,
    pub components: Value,
    pub deleted: bool,
}

/// The fake Discord.
pub struct FakeDiscord {
    /// Base URL for serenity's proxy setting.
    pub rest_url: String,
    shared: Arc<Shared>,
}

pub fn user_json(id: u64) -> Value {
    json!({
        "id": id.to_string(),
        "username": format!("user{id}"),
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": id == BOT_ID,
    })
}

/// A message as Discord returns it.
pub fn message_json(id: u64, channel: u64, author: u64, content: &str) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel.to_string(),
        "author": user_json(author),
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "components": [],
        "pinned": false,
        "type": 0,
        "flags": 0,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn rest(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let raw = uri.path();
    let path = percent_decode(raw.strip_prefix("/api/v10").unwrap_or(raw));
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String("<not json>".into()))
    };
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
    });
    shared.arrived.notify_waiters();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let new_id = || shared.next_id.fetch_add(1, Ordering::SeqCst);
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    if let Some(refused) = injected(&shared, method.as_str(), &path) {
        return refused;
    }
    if let ["channels", channel, ..] = seg.as_slice()
        && channel
            .parse::<u64>()
            .is_ok_and(|c| shared.deleted_channels.lock().unwrap().contains(&c))
    {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Channel", "code": 10003}),
        );
    }
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["gateway"]) => json_response(StatusCode::OK, json!({"url": shared.gateway_url})),
        ("GET", ["gateway", "bot"]) => json_response(
            StatusCode::OK,
            json!({"url": shared.gateway_url, "shards": 1, "session_start_limit":
                {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        ),
        ("POST", ["users", "@me", "channels"]) => {
            let recipient: u64 = body
                .get("recipient_id")
                .and_then(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                })
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            json_response(
                StatusCode::OK,
                json!({"id": (recipient + DM_OFFSET).to_string(), "type": 1,
                       "recipients": [user_json(recipient)], "last_message_id": null}),
            )
        }
        ("POST", ["channels", channel, "messages"]) => {
            let channel: u64 = channel.parse().unwrap_or(0);
            if shared.closed.lock().unwrap().contains(&channel) {
                return json_response(
                    StatusCode::FORBIDDEN,
                    json!({"message": "Cannot send messages to this user", "code": 50007}),
                );
            }
            let id = new_id();
            shared.messages.lock().unwrap().insert(
                id,
                FakeMessage {
                    id,
                    channel,
                    content: content.to_string(),
                    embeds: body.get("embeds").cloned().unwrap_or(json!([])),
                    components: body.get("components").cloned().unwrap_or(json!([])),
                    deleted: false,
                },
            );
            json_response(StatusCode::OK, message_json(id, channel, BOT_ID, content))
        }
        ("POST", ["channels", _, "messages", "bulk-delete"]) => {
            let ids: Vec<u64> = body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
                .collect();
            let mut messages = shared.messages.lock().unwrap();
            for id in ids {
                if let Some(m) = messages.get_mut(&id) {
                    m.deleted = true;
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("DELETE", ["channels", _, "messages", message]) => {
            let id: u64 = message.parse().unwrap_or(0);
            match shared.messages.lock().unwrap().get_mut(&id) {
                Some(m) if !m.deleted => {
                    m.deleted = true;
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => json_response(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Unknown Message", "code": 10008}),
                ),
            }
        }
        ("PATCH", ["channels", _, "messages", message])
            if message.parse::<u64>().is_ok_and(|id| {
                shared
                    .messages
                    .lock()
                    .unwrap()
                    .get(&id)
                    .is_some_and(|m| m.deleted)
            }) =>
        {
            json_response(
                StatusCode::NOT_FOUND,
                json!({"message": "Unknown Message", "code": 10008}),
            )
        }
        ("PATCH", ["channels", channel, "messages", message]) => {
            if let Some(m) = message
                .parse::<u64>()
                .ok()
                .and_then(|id| shared.messages.lock().unwrap().get(&id).cloned())
            {
                let mut m = m;
                if let Some(c) = body.get("content").and_then(Value::as_str) {
                    m.content = c.to_string();
                }
                if let Some(e) = body.get("embeds") {
                    m.embeds = e.clone();
                }
                if let Some(c) = body.get("components") {
                    m.components = c.clone();
                }
                shared.messages.lock().unwrap().insert(m.id, m);
            }
            json_response(
                StatusCode::OK,
                message_json(
                    message.parse().unwrap_or(0),
                    channel.parse().unwrap_or(0),
                    BOT_ID,
                    content,
                ),
            )
        }
        ("PUT", ["channels", _, "messages", _, "reactions", _, "@me"])
        | ("DELETE", ["channels", _, "messages", _, "reactions", _, _]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["interactions", interaction, _, "callback"]) => {
            if !shared
                .answered
                .lock()
                .unwrap()
                .insert(interaction.to_string())
            {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Interaction has already been acknowledged.", "code": 40060}),
                );
            }
            // An update answer (type 7) edits the message the component was on.
            let on = interaction
                .parse::<u64>()
                .ok()
                .and_then(|i| shared.component_messages.lock().unwrap().get(&i).copied());
            if body["type"] == 7
                && let Some(id) = on
                && let Some(m) = shared.messages.lock().unwrap().get_mut(&id)
            {
                let data = &body["data"];
                if let Some(c) = data.get("content").and_then(Value::as_str) {
                    m.content = c.to_string();
                }
                if let Some(e) = data.get("embeds") {
                    m.embeds = e.clone();
                }
                if let Some(c) = data.get("components") {
                    m.components = c.clone();
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("PATCH", ["webhooks", _, _, "messages", "@original"])
            if shared
                .failing_original_edits
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok() =>
        {
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "500: Internal Server Error", "code": 0}),
            )
        }
        ("PUT", ["applications", _, "commands"]) => json_response(StatusCode::OK, json!([])),
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            json_response(
                StatusCode::OK,
                message_json(new_id(), CHANNEL_ID, BOT_ID, content),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "404: Not Found", "code": 0}),
        ),
    }
}

/// The answer of an injected failure matching this request, if one is left.
fn injected(shared: &Shared, method: &str, path: &str) -> Option<Response> {
    let mut failing = shared.failing.lock().unwrap();
    let hit = failing
        .iter_mut()
        .find(|(m, p, _, _, times)| *times > 0 && m == method && path.contains(p.as_str()))?;
    hit.4 -= 1;
    let (status, code) = (hit.2, hit.3);
    failing.retain(|f| f.4 > 0);
    Some(json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"message": "injected failure", "code": code}),
    ))
}

fn ready(shared: &Shared) -> String {
    json!({
        "op": 0,
        "s": shared.seq.fetch_add(1, Ordering::SeqCst),
        "t": "READY",
        "d": {
            "v": 10,
            "user": {"id": BOT_ID.to_string(), "username": "sublist", "discriminator": "0",
                     "avatar": null, "bot": true},
            "guilds": [],
            "session_id": "fake-session",
            "resume_gateway_url": shared.gateway_url,
            "shard": [0, 1],
            "application": {"id": APP_ID.to_string(), "flags": 0},
        }
    })
    .to_string()
}

async fn serve_gateway_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let hello = json!({"op": 10, "s": null, "t": null, "d": {"heartbeat_interval": 45000}});
    if sink.send(WsMessage::Text(hello.to_string())).await.is_err() {
        return;
    }
    // Wait for IDENTIFY.
    loop {
        match source.next().await {
            Some(Ok(WsMessage::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["op"] == 2 {
                    break;
                }
            }
            Some(Ok(_)) => {}
            _ => return,
        }
    }
    if sink.send(WsMessage::Text(ready(&shared))).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mine = {
        let mut session = shared.session.lock().await;
        *session = Some(tx);
        shared.session_no.fetch_add(1, Ordering::SeqCst) + 1
    };
    shared.sessions_started.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => if sink.send(WsMessage::Text(text)).await.is_err() { break },
                None => break,
            },
            incoming = source.next() => match incoming {
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["op"] == 1 {
                        let ack = json!({"op": 11, "s": null, "t": null, "d": null});
                        if sink.send(WsMessage::Text(ack.to_string())).await.is_err() { break }
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // A newer session (a restarted bot) may have taken over already: leave it.
    let mut session = shared.session.lock().await;
    if shared.session_no.load(Ordering::SeqCst) == mine {
        *session = None;
    }
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_url = format!("ws://{}", ws_listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            requests: std::sync::Mutex::new(Vec::new()),
            arrived: tokio::sync::Notify::new(),
            gateway_url,
            session: Mutex::new(None),
            seq: AtomicU64::new(1),
            next_id: AtomicU64::new(800_000_000_000_000_001),
            sessions_started: AtomicU64::new(0),
            closed: std::sync::Mutex::new(std::collections::HashSet::new()),
            messages: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            deleted_channels: std::sync::Mutex::new(std::collections::HashSet::new()),
            failing: std::sync::Mutex::new(Vec::new()),
            component_messages: std::sync::Mutex::new(std::collections::HashMap::new()),
            session_no: AtomicU64::new(0),
            answered: std::sync::Mutex::new(std::collections::HashSet::new()),
            failing_original_edits: AtomicU64::new(0),
        });
        let gw = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = ws_listener.accept().await {
                tokio::spawn(serve_gateway_connection(gw.clone(), stream));
            }
        });
        let rest_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rest_url = format!("http://{}", rest_listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(rest)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(rest_listener, app).await;
        });
        FakeDiscord { rest_url, shared }
    }

    /// Refuses messages in `channel` from now on (a member who closed their DMs).
    pub fn close_channel(&self, channel: u64) {
        self.shared.closed.lock().unwrap().insert(channel);
    }

    /// Accepts messages in `channel` again (the member opened their DMs).
    pub fn open_channel(&self, channel: u64) {
        self.shared.closed.lock().unwrap().remove(&channel);
    }

    /// Deletes a channel: every call on it answers 404 "Unknown Channel" from now on.
    pub fn delete_channel(&self, channel: u64) {
        self.shared.deleted_channels.lock().unwrap().insert(channel);
        // Its messages go with it.
        for m in self.shared.messages.lock().unwrap().values_mut() {
            if m.channel == channel {
                m.deleted = true;
            }
        }
    }

    /// Answers the next `times` requests with this method whose path contains `path_contains`
    /// with `status` and Discord error `code`.
    pub fn fail_requests(
        &self,
        method: &str,
        path_contains: &str,
        status: u16,
        code: u64,
        times: u32,
    ) {
        self.shared.failing.lock().unwrap().push((
            method.to_string(),
            path_contains.to_string(),
            status,
            code,
            times,
        ));
    }

    /// Every message posted in a channel so far, deleted ones included, oldest first.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.messages_where(|_| true)
    }

    /// The messages matching `pred`, oldest first.
    pub fn messages_where(&self, pred: impl Fn(&FakeMessage) -> bool) -> Vec<FakeMessage> {
        self.shared
            .messages
            .lock()
            .unwrap()
            .values()
            .filter(|m| pred(m))
            .cloned()
            .collect()
    }

    /// The messages posted after message `id`, oldest first.
    pub fn messages_after(&self, id: u64) -> Vec<FakeMessage> {
        self.shared
            .messages
            .lock()
            .unwrap()
            .range(id + 1..)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// How many recorded requests match `pred`.
    pub fn count(&self, pred: impl Fn(&Recorded) -> bool) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    /// Waits up to `timeout` for a request matching `pred` (among all recorded).
    pub async fn try_wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Recorded) -> bool,
    ) -> Option<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(r) = self
                .shared
                .requests
                .lock()
                .unwrap()
                .iter()
                .find(|r| pred(r))
            {
                return Some(r.clone());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    /// Answers the next `n` edits of an original interaction response with a 500.
    pub fn fail_original_edits(&self, n: u64) {
        self.shared
            .failing_original_edits
            .store(n, Ordering::SeqCst);
    }

    /// How many gateway sessions reached READY so far.
    pub fn sessions_started(&self) -> u64 {
        self.shared.sessions_started.load(Ordering::SeqCst)
    }

    /// Waits until `n` sessions reached READY.
    pub async fn wait_sessions(&self, n: u64) {
        for _ in 0..500 {
            if self.sessions_started() >= n && self.shared.session.lock().await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the bot did not connect to the fake gateway");
    }

    /// Sends a dispatch (op 0) to the connected bot.
    pub async fn dispatch(&self, t: &str, d: Value) {
        if t == "INTERACTION_CREATE"
            && let (Some(i), Some(m)) = (
                d["id"].as_str().and_then(|v| v.parse::<u64>().ok()),
                d["message"]["id"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok()),
            )
        {
            self.shared.component_messages.lock().unwrap().insert(i, m);
        }
        let frame =
            json!({"op": 0, "s": self.shared.seq.fetch_add(1, Ordering::SeqCst), "t": t, "d": d});
        for _ in 0..500 {
            if let Some(tx) = self.shared.session.lock().await.as_ref() {
                tx.send(frame.to_string()).expect("gateway session is open");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no gateway session to dispatch {t} to");
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// Waits for a request matching `pred` (among all recorded), up to 10 s.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return r;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                break;
            }
        }
        panic!(
            "no request {what} arrived; got:\n{}",
            self.requests()
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.path, r.body))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Waits for the callback answering interaction `id`.
    pub async fn callback(&self, id: u64) -> Value {
        let prefix = format!("/interactions/{id}/");
        self.wait_for(&format!("answering interaction {id}"), |r| {
            r.method == "POST" && r.path.starts_with(&prefix) && r.path.ends_with("/callback")
        })
        .await
        .body
    }

    /// Waits for the message that ends a deferred interaction `id` (its first follow-up or
    /// an edit of the original), and returns its body.
    pub async fn deferred_reply(&self, id: u64) -> Value {
        let token = token(id);
        self.wait_for(&format!("completing deferred interaction {id}"), |r| {
            r.path.starts_with(&format!("/webhooks/{APP_ID}/{token}"))
        })
        .await
        .body
    }
}

pub fn token(interaction: u64) -> String {
    format!("token-{interaction}")
}

fn member_json(user: u64, permissions: &str) -> Value {
    json!({
        "user": user_json(user),
        "roles": [],
        "joined_at": TIMESTAMP,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "permissions": permissions,
    })
}

fn base_interaction(id: u64, kind: u8, user: u64, in_guild: bool) -> Value {
    let mut v = json!({
        "id": id.to_string(),
        "application_id": APP_ID.to_string(),
        "type": kind,
        "token": token(id),
        "version": 1,
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 8_388_608,
        "app_permissions": "2248473465835073",
    });
    if in_guild {
        v["guild_id"] = json!(GUILD_ID.to_string());
        v["guild_locale"] = json!("en-US");
        v["channel_id"] = json!(CHANNEL_ID.to_string());
        v["member"] = member_json(user, "0");
    } else {
        v["channel_id"] = json!((user + DM_OFFSET).to_string());
        v["user"] = user_json(user);
    }
    v
}

/// A slash command invocation in the server's channel. `options` is Discord's option list
/// (for `/layers create`, one option of type 1 named `create` holding the rest).
pub fn slash(id: u64, user: u64, name: &str, options: Value) -> Value {
    let mut v = base_interaction(id, 2, user, true);
    v["data"] = json!({"id": "900000000000000001", "name": name, "type": 1, "options": options});
    v
}

/// A subcommand's options: `sub("create", [("name", 3, "Mood")])`.
pub fn sub(name: &str, options: Value) -> Value {
    json!([{"name": name, "type": 1, "options": options}])
}

/// Gives the invoking member these permissions (a decimal bit set).
pub fn with_permissions(mut v: Value, permissions: &str) -> Value {
    v["member"]["permissions"] = json!(permissions);
    v
}

/// A button press (or select) on a message the bot posted in `channel`.
pub fn component(
    id: u64,
    user: u64,
    channel: u64,
    message: u64,
    custom_id: &str,
    values: Option<Vec<&str>>,
) -> Value {
    let in_guild = channel == CHANNEL_ID;
    let mut v = base_interaction(id, 3, user, in_guild);
    v["channel_id"] = json!(channel.to_string());
    v["message"] = message_json(message, channel, BOT_ID, "");
    v["data"] = match values {
        Some(values) => json!({"custom_id": custom_id, "component_type": 3, "values": values}),
        None => json!({"custom_id": custom_id, "component_type": 2}),
    };
    v
}

/// A reaction added or removed by `user` on a message in a DM or channel.
pub fn reaction(user: u64, channel: u64, message: u64, emoji: &str) -> Value {
    let mut v = json!({
        "user_id": user.to_string(),
        "channel_id": channel.to_string(),
        "message_id": message.to_string(),
        "emoji": {"id": null, "name": emoji},
        "burst": false,
        "type": 0,
    });
    if channel == CHANNEL_ID {
        v["guild_id"] = json!(GUILD_ID.to_string());
    }
    v
}
