//! Linking a member's Spotify account (Authorization Code flow with the client secret, by
//! redirect or by pasting the address the browser ended on, then confirmed by the member),
//! choosing an app with a free slot, and keeping tokens fresh.

use base64::Engine;
use chrono::{DateTime, Utc};
use rspotify::clients::OAuthClient;
use rspotify::{AuthCodeSpotify, Credentials, OAuth, Token};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::api::Session;
use super::error::{CallError, ErrorBody, SpotifyError};
use super::{Notice, Spotify};
use crate::config::SpotifyApp;
use crate::domain::{MemberId, SpotifyAccount};
use crate::store::{Bind, LinkRow, LinkStatus, StoreError};

/// How long an authorize URL (its `state`) stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;
/// How long an authorised account waits for its member's confirmation (a Discord interaction
/// token lasts 15 minutes).
const CONFIRM_TTL_MINUTES: i64 = 15;
/// An `invalid_grant` this long or more before the refresh token's six months are up is a
/// revocation, not the expiry.
const REVOKED_MARGIN_HOURS: i64 = 24;
/// Refresh an access token this long before it expires.
const REFRESH_MARGIN_SECS: i64 = 300;
/// Warn a member this long before their link dies.
pub const EXPIRY_WARNING_DAYS: i64 = 7;

/// What sublist asks Spotify for.
fn scopes() -> std::collections::HashSet<String> {
    rspotify::scopes!(
        "user-library-read",
        "user-follow-read",
        "playlist-read-private",
        "playlist-read-collaborative",
        "playlist-modify-private"
    )
}

/// A link in progress: the address to open.
#[derive(Clone, Debug)]
pub struct LinkStart {
    pub url: String,
    pub expires_at: DateTime<Utc>,
    /// The redirect goes to a loopback address, so the member must paste the address their
    /// browser ends on.
    pub paste_needed: bool,
}

/// A member's link as the rest of the bot sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub account: SpotifyAccount,
    /// False once Spotify refused the refresh token: the member must link again.
    pub active: bool,
    /// Spotify refused the refresh token well before its six months: access was removed.
    pub revoked: bool,
    pub refresh_expires_at: DateTime<Utc>,
    /// Active and dying within a week.
    pub expires_soon: bool,
}

/// Why a link could not be made. `Display` is the sentence for the member.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(
        "You're already linked to the Spotify account “{display_name}”. Use /unlink first if you want to link another one."
    )]
    AlreadyLinked { display_name: String },
    #[error(
        "That Spotify account is already linked to another Discord member. One Spotify account can be linked to one member only."
    )]
    AccountLinkedElsewhere,
    #[error(
        "Every Spotify app this bot has is full (Spotify allows 5 users per app), so you can't link right now. The operator has been told how to add one."
    )]
    AllAppsFull { apps: usize },
    #[error("This bot has no Spotify app configured, so linking is off. Tell the operator.")]
    NoApps,
    #[error("That link was already used or is unknown. Use /link to get a fresh one.")]
    StateUnknown,
    #[error("That link expired (links last 10 minutes). Use /link to get a fresh one.")]
    StateExpired,
    #[error("That address belongs to a link someone else asked for. Use /link to get your own.")]
    StateForeign,
    #[error(
        "I couldn't find `code` and `state` in what you pasted. Paste the whole address from your browser's address bar after you clicked Agree on Spotify."
    )]
    PasteUnreadable,
    #[error("That address has no `state`, so it can't be matched to a /link. Use /link again.")]
    MissingState,
    #[error(
        "That's the address of the Spotify page itself. Open it, click Agree, and paste the address your browser ends on."
    )]
    PastedAuthorizeUrl,
    #[error("You declined on Spotify's page, so nothing was linked.")]
    Denied,
    #[error(
        "Spotify refused the authorization code (it may have been used already or expired). Use /link to try again."
    )]
    CodeRefused,
    #[error("The Spotify app this link was made for is no longer configured. Use /link again.")]
    AppGone,
    #[error("No Spotify account is waiting for your confirmation. Use /link to start linking.")]
    NothingToConfirm,
    #[error(
        "That confirmation expired (it lasts 15 minutes). Use /link again; nothing was linked."
    )]
    ConfirmExpired,
    #[error("{0}")]
    Spotify(#[from] SpotifyError),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        LinkError::Spotify(SpotifyError::Store(e))
    }
}

impl LinkError {
    /// What the operator should be told (logged), if anything.
    pub fn operator_hint(&self) -> Option<String> {
        match self {
            LinkError::AllAppsFull { apps } => Some(format!(
                "All {apps} Spotify apps are at their user cap. Create another app at https://developer.spotify.com/dashboard (Web API, redirect URI as configured), add its client id and secret as a new [[spotify.apps]] entry in the config, and restart sublist."
            )),
            LinkError::NoApps => Some(
                "No Spotify app is configured: add a [[spotify.apps]] entry to the config.".into(),
            ),
            _ => None,
        }
    }
}

/// The `/api/token` answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: i64,
    refresh_token: Option<String>,
}

impl Spotify {
    fn rspotify_config(&self) -> rspotify::Config {
        let cfg = &self.inner.config;
        rspotify::Config {
            api_base_url: with_slash(cfg.api_base_url.as_str()),
            auth_base_url: with_slash(cfg.accounts_base_url.as_str()),
            token_refreshing: false,
            ..Default::default()
        }
    }

    fn client_for(&self, app: &SpotifyApp, state: &str, token: Option<Token>) -> AuthCodeSpotify {
        let creds = Credentials::new(&app.client_id, app.client_secret.expose_secret());
        let oauth = OAuth {
            redirect_uri: app.redirect_uri.to_string(),
            state: state.to_string(),
            scopes: scopes(),
            proxies: None,
        };
        match token {
            Some(t) => {
                AuthCodeSpotify::from_token_with_config(t, creds, oauth, self.rspotify_config())
            }
            None => AuthCodeSpotify::with_config(creds, oauth, self.rspotify_config()),
        }
    }

    /// Starts a link: picks an app with a free slot and reserves it with a fresh `state`
    /// bound to the member (one transaction, so links started together cannot exceed a cap),
    /// and returns Spotify's authorize address. Spotify is asked to show its consent dialog
    /// even to someone who agreed before, so the person opening it sees which account it is.
    pub async fn start_link(&self, member: MemberId) -> Result<LinkStart, LinkError> {
        let store = self.store();
        store.ensure_member(member).await?;
        let existing = store.link(member).await?;
        if let Some(l) = &existing
            && l.status == LinkStatus::Active
        {
            return Err(LinkError::AlreadyLinked {
                display_name: l.display_name.clone().unwrap_or_else(|| l.user_id.clone()),
            });
        }
        let apps = &self.inner.config.apps;
        let full = if apps.is_empty() {
            Some(LinkError::NoApps)
        } else {
            None
        };
        let now = self.store().now();
        store.purge_oauth_states(now).await?;
        let state = new_state();
        let expires_at = now + self.state_ttl();
        let caps: Vec<(&str, u32)> = apps
            .iter()
            .map(|a| (a.client_id.as_str(), a.user_cap))
            .collect();
        let reserved = match full {
            Some(e) => Err(e),
            None => store
                .reserve_link_slot(member, &state, expires_at, &caps, now)
                .await?
                .ok_or(LinkError::AllAppsFull { apps: apps.len() }),
        };
        let app_id = reserved.inspect_err(|e| {
            if let Some(hint) = e.operator_hint() {
                tracing::warn!("{hint}");
            }
        })?;
        let app = self.app(&app_id).ok_or(LinkError::AppGone)?;
        let url = self
            .client_for(app, &state, None)
            .get_authorize_url(true)
            .map_err(|e| SpotifyError::Protocol(e.to_string()))?;
        Ok(LinkStart {
            url,
            expires_at,
            paste_needed: is_loopback(&app.redirect_uri),
        })
    }

    /// Completes the consent from the address the member pasted (it carries `code` and
    /// `state`); the state must be one this member asked for. The account then waits for the
    /// member's [`Spotify::confirm_link`].
    pub async fn complete_link_paste(
        &self,
        member: MemberId,
        pasted: &str,
    ) -> Result<SpotifyAccount, LinkError> {
        let (code, state, error) = parse_redirect(pasted)?;
        self.complete(code, state, error, Some(member))
            .await
            .map(|(_, a)| a)
    }

    /// Completes the consent from the redirect's query parameters (the web callback); the
    /// account then waits for the confirmation of the member who ran `/link`.
    pub async fn complete_link_callback(
        &self,
        code: Option<&str>,
        state: Option<&str>,
        error: Option<&str>,
    ) -> Result<(MemberId, SpotifyAccount), LinkError> {
        let state = state.ok_or(LinkError::MissingState)?;
        self.complete(
            code.map(String::from),
            state.to_string(),
            error.map(String::from),
            None,
        )
        .await
    }

    /// The shared end of both paths.
    async fn complete(
        &self,
        code: Option<String>,
        state: String,
        error: Option<String>,
        expect: Option<MemberId>,
    ) -> Result<(MemberId, SpotifyAccount), LinkError> {
        let store = self.store();
        let pending = store
            .peek_oauth_state(&state)
            .await?
            .ok_or(LinkError::StateUnknown)?;
        if expect.is_some_and(|m| m != pending.member) {
            // Not consumed: the member it belongs to can still use it.
            return Err(LinkError::StateForeign);
        }
        if !store.consume_oauth_state(&state).await? {
            return Err(LinkError::StateUnknown);
        }
        if pending.expires_at <= self.store().now() {
            return Err(LinkError::StateExpired);
        }
        if error.is_some() {
            return Err(LinkError::Denied);
        }
        let code = code.ok_or(LinkError::PasteUnreadable)?;
        let member = pending.member;
        let _guard = self.member_lock(member).await;
        self.load_pauses().await?;
        let app = self.app(&pending.app_client_id).ok_or(LinkError::AppGone)?;
        let limiter = self.limiter(&app.client_id).ok_or(LinkError::AppGone)?;
        let client = self.client_for(app, &state, None);
        let timeout = self.inner.config.request_timeout;
        // A code works once: no retry.
        match tokio::time::timeout(timeout, client.request_token(&code)).await {
            Err(_) => {
                return Err(
                    SpotifyError::Unavailable("the token exchange timed out".into()).into(),
                );
            }
            Ok(Err(e)) => {
                return Err(match CallError::from_rspotify(e).await {
                    CallError::Status {
                        status: 400..=401, ..
                    } => LinkError::CodeRefused,
                    CallError::Status { status, body, .. } => {
                        super::limiter::status_error(status, &body).into()
                    }
                    other => SpotifyError::Unavailable(format!("{other:?}")).into(),
                });
            }
            Ok(Ok(())) => {}
        }
        let token = client
            .token
            .lock()
            .await
            .map_err(|_| SpotifyError::Protocol("token lock poisoned".into()))?
            .clone()
            .ok_or_else(|| SpotifyError::Protocol("no token after the exchange".into()))?;
        let session = Session::new(client, limiter, None);
        let me = session.me().await?;

        if let Some(other) = store.link_by_account(&me.account_id).await?
            && other.member != member
        {
            return Err(LinkError::AccountLinkedElsewhere);
        }
        let existing = store.link(member).await?;
        if let Some(l) = &existing
            && l.status == LinkStatus::Active
            && l.account_id != me.account_id
        {
            return Err(LinkError::AlreadyLinked {
                display_name: l.display_name.clone().unwrap_or_else(|| l.user_id.clone()),
            });
        }
        let now = self.store().now();
        let row = LinkRow {
            member,
            app_client_id: app.client_id.clone(),
            account_id: me.account_id.clone(),
            user_id: me.user_id.clone(),
            display_name: me.display_name.clone(),
            access_token: Some(SecretString::from(token.access_token.clone())),
            refresh_token: token.refresh_token.clone().map(SecretString::from),
            access_expires_at: token.expires_at,
            authorized_at: now,
            refresh_expires_at: self.link_ends(now),
            status: LinkStatus::Active,
            linked_at: now,
            expiry_warned_at: None,
        };
        store
            .put_pending_link(&row, now + chrono::Duration::minutes(CONFIRM_TTL_MINUTES))
            .await?;
        tracing::info!(%member, app = %app.client_id, "Spotify account authorised; waiting for the member to confirm it");
        Ok((member, account_of(&row)))
    }

    /// Binds the account waiting for the member's confirmation: checked again that it is no
    /// other member's and that its app has a free slot, in one transaction.
    pub async fn confirm_link(&self, member: MemberId) -> Result<SpotifyAccount, LinkError> {
        let _guard = self.member_lock(member).await;
        let store = self.store();
        let (mut row, until) = store
            .pending_link(member)
            .await?
            .ok_or(LinkError::NothingToConfirm)?;
        let now = self.store().now();
        if until <= now {
            store.delete_pending_link(member).await?;
            return Err(LinkError::ConfirmExpired);
        }
        let Some(app) = self.app(&row.app_client_id) else {
            store.delete_pending_link(member).await?;
            return Err(LinkError::AppGone);
        };
        row.linked_at = now;
        match store.bind_link(&row, app.user_cap).await? {
            Bind::Bound => {
                tracing::info!(%member, app = %app.client_id, "Spotify account linked");
                Ok(account_of(&row))
            }
            Bind::AccountElsewhere => {
                store.delete_pending_link(member).await?;
                Err(LinkError::AccountLinkedElsewhere)
            }
            Bind::AlreadyLinked(display_name) => {
                store.delete_pending_link(member).await?;
                Err(LinkError::AlreadyLinked { display_name })
            }
            Bind::AppFull => {
                store.delete_pending_link(member).await?;
                let e = LinkError::AllAppsFull {
                    apps: self.inner.config.apps.len(),
                };
                if let Some(hint) = e.operator_hint() {
                    tracing::warn!("{hint}");
                }
                Err(e)
            }
        }
    }

    /// Drops the account waiting for the member's confirmation (they said it is not theirs);
    /// true when one was waiting.
    pub async fn cancel_link(&self, member: MemberId) -> Result<bool, SpotifyError> {
        let _guard = self.member_lock(member).await;
        Ok(self.store().delete_pending_link(member).await?)
    }

    /// Removes the member's link and tokens (and an account waiting for confirmation); their
    /// layers and labels stay.
    pub async fn unlink(&self, member: MemberId) -> Result<bool, SpotifyError> {
        let _guard = self.member_lock(member).await;
        Ok(self.store().delete_link(member).await?)
    }

    /// The member's link, if any.
    pub async fn link_info(&self, member: MemberId) -> Result<Option<LinkInfo>, SpotifyError> {
        let now = self.store().now();
        Ok(self.store().link(member).await?.map(|l| info_of(&l, now)))
    }

    /// Active links whose refresh token dies within `within` (the bot warns a week ahead).
    pub async fn links_expiring_within(
        &self,
        within: chrono::Duration,
    ) -> Result<Vec<(MemberId, DateTime<Utc>)>, SpotifyError> {
        let now = self.store().now();
        Ok(self
            .store()
            .all_links()
            .await?
            .into_iter()
            .filter(|l| l.status == LinkStatus::Active && l.refresh_expires_at - now <= within)
            .map(|l| (l.member, l.refresh_expires_at))
            .collect())
    }

    /// A session for the member's API calls, refreshing the access token first if it is
    /// about to expire. The caller holds the member lock.
    pub(crate) async fn session(
        &self,
        member: MemberId,
    ) -> Result<(Session, LinkRow), SpotifyError> {
        self.load_pauses().await?;
        let store = self.store();
        let mut link = store.link(member).await?.ok_or(SpotifyError::NotLinked)?;
        match link.status {
            LinkStatus::Active => {}
            LinkStatus::Expired => return Err(SpotifyError::LinkExpired),
            LinkStatus::Revoked => return Err(SpotifyError::LinkRevoked),
        }
        self.warn_if_expiring(&link).await?;
        let app = self
            .app(&link.app_client_id)
            .ok_or_else(|| SpotifyError::Api {
                status: 0,
                message: "the Spotify app of this link is no longer configured; use /link again"
                    .into(),
            })?
            .clone();
        let limiter = self
            .limiter(&app.client_id)
            .ok_or(SpotifyError::NotLinked)?;
        let now = self.store().now();
        let fresh = link.access_token.is_some()
            && link
                .access_expires_at
                .is_some_and(|t| t - now > chrono::Duration::seconds(REFRESH_MARGIN_SECS));
        if !fresh {
            self.refresh(&mut link, &app, &limiter).await?;
        }
        let token = Token {
            access_token: link
                .access_token
                .as_ref()
                .map(|t| t.expose_secret().to_string())
                .unwrap_or_default(),
            expires_in: chrono::Duration::seconds(3600),
            expires_at: link.access_expires_at,
            refresh_token: None,
            scopes: scopes(),
        };
        let client = self.client_for(&app, "", Some(token));
        let refresher = super::api::Refresher {
            spotify: self.clone(),
            link: tokio::sync::Mutex::new(link.clone()),
            app,
            used: std::sync::atomic::AtomicBool::new(false),
        };
        Ok((Session::new(client, limiter, Some(refresher)), link))
    }

    /// Tells the member once, within [`EXPIRY_WARNING_DAYS`] of its end, that their link dies
    /// soon (when someone listens for notices).
    async fn warn_if_expiring(&self, link: &LinkRow) -> Result<(), SpotifyError> {
        let now = self.store().now();
        if link.expiry_warned_at.is_some()
            || link.refresh_expires_at - now > chrono::Duration::days(EXPIRY_WARNING_DAYS)
        {
            return Ok(());
        }
        let Some(tx) = self.notice_sender() else {
            return Ok(());
        };
        if self.store().claim_expiry_warning(link.member, now).await? {
            let _ = tx.send(Notice::LinkExpiring {
                member: link.member,
                expires_at: link.refresh_expires_at,
            });
        }
        Ok(())
    }

    /// Refreshes the access token, keeping the old refresh token when Spotify sends none. On
    /// `invalid_grant` the link ends and its tokens are dropped: as expired when the refresh
    /// token's six months are (nearly) up, else as revoked (access was removed on Spotify).
    pub(crate) async fn refresh(
        &self,
        link: &mut LinkRow,
        app: &SpotifyApp,
        limiter: &super::AppLimiter,
    ) -> Result<(), SpotifyError> {
        let refresh_token = link
            .refresh_token
            .clone()
            .ok_or(SpotifyError::LinkExpired)?;
        let url = format!(
            "{}api/token",
            with_slash(self.inner.config.accounts_base_url.as_str())
        );
        let http = &self.inner.http;
        let answer = limiter
            .run("refresh token", || async {
                let resp = http
                    .post(&url)
                    .basic_auth(&app.client_id, Some(app.client_secret.expose_secret()))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh_token.expose_secret()),
                    ])
                    .send()
                    .await
                    .map_err(CallError::from_reqwest)?;
                let status = resp.status().as_u16();
                if status == 400 || status == 401 {
                    // Not retryable: hand the body back to decide below.
                    return Ok(Err(resp.text().await.unwrap_or_default()));
                }
                if !resp.status().is_success() {
                    return Err(CallError::from_response(resp).await);
                }
                resp.json::<TokenAnswer>()
                    .await
                    .map(Ok)
                    .map_err(|e| CallError::Parse(e.to_string()))
            })
            .await?;
        match answer {
            Ok(t) => {
                let access = SecretString::from(t.access_token);
                // Clamped: the lifetime comes from the remote server.
                let expires =
                    self.store().now() + chrono::Duration::seconds(t.expires_in.clamp(0, 86_400));
                let rotated = t.refresh_token.map(SecretString::from);
                self.store()
                    .update_tokens(link.member, &access, expires, rotated.as_ref())
                    .await?;
                link.access_token = Some(access);
                link.access_expires_at = Some(expires);
                if let Some(r) = rotated {
                    link.refresh_token = Some(r);
                }
                Ok(())
            }
            Err(body) => {
                let parsed = ErrorBody::parse(&body);
                if parsed.oauth_error.as_deref() == Some("invalid_grant") {
                    let status = refused_status(link.refresh_expires_at, self.store().now());
                    tracing::info!(member = %link.member, ?status, "refresh token refused: link ended");
                    self.store().end_link(link.member, status).await?;
                    link.status = status;
                    Err(match status {
                        LinkStatus::Revoked => SpotifyError::LinkRevoked,
                        _ => SpotifyError::LinkExpired,
                    })
                } else {
                    Err(SpotifyError::Api {
                        status: 400,
                        message: parsed
                            .oauth_error
                            .or(parsed.message)
                            .unwrap_or_else(|| "token refresh refused".into()),
                    })
                }
            }
        }
    }
}

fn account_of(l: &LinkRow) -> SpotifyAccount {
    SpotifyAccount {
        account_id: l.account_id.clone(),
        user_id: l.user_id.clone(),
        display_name: l.display_name.clone(),
        app_client_id: l.app_client_id.clone(),
    }
}

/// How a link whose refresh token Spotify refused at `now` ended: expired when its six
/// months are (nearly) up, revoked well before.
fn refused_status(refresh_expires_at: DateTime<Utc>, now: DateTime<Utc>) -> LinkStatus {
    if now < refresh_expires_at - chrono::Duration::hours(REVOKED_MARGIN_HOURS) {
        LinkStatus::Revoked
    } else {
        LinkStatus::Expired
    }
}

fn info_of(l: &LinkRow, now: DateTime<Utc>) -> LinkInfo {
    let active = l.status == LinkStatus::Active;
    LinkInfo {
        account: account_of(l),
        active,
        revoked: l.status == LinkStatus::Revoked,
        refresh_expires_at: l.refresh_expires_at,
        expires_soon: active
            && l.refresh_expires_at - now <= chrono::Duration::days(EXPIRY_WARNING_DAYS),
    }
}

fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

/// 32 random bytes, URL-safe base64.
fn new_state() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Reads `code`, `state` and `error` out of what a member pasted: a whole address, or just
/// its query.
pub(crate) fn parse_redirect(
    pasted: &str,
) -> Result<(Option<String>, String, Option<String>), LinkError> {
    let text = pasted
        .trim()
        .trim_matches(|c| c == '<' || c == '>' || c == '"');
    let query = match url::Url::parse(text) {
        Ok(u) => u.query().unwrap_or_default().to_string(),
        Err(_) => text.split_once('?').map_or(text, |(_, q)| q).to_string(),
    };
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut authorize = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "response_type" | "client_id" => authorize = true,
            _ => {}
        }
    }
    if authorize && code.is_none() {
        return Err(LinkError::PastedAuthorizeUrl);
    }
    match (code, state, error) {
        (code @ Some(_), Some(state), None) => Ok((code, state, None)),
        (_, Some(state), Some(error)) => Ok((None, state, Some(error))),
        _ => Err(LinkError::PasteUnreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_addresses_are_read() {
        let (code, state, err) =
            parse_redirect(" http://127.0.0.1:8080/callback?code=abc&state=xyz ").unwrap();
        assert_eq!(
            (code.as_deref(), state.as_str(), err),
            (Some("abc"), "xyz", None)
        );
        let (_, state, err) = parse_redirect("?error=access_denied&state=s1").unwrap();
        assert_eq!(
            (state.as_str(), err.as_deref()),
            ("s1", Some("access_denied"))
        );
        assert!(matches!(
            parse_redirect("hello"),
            Err(LinkError::PasteUnreadable)
        ));
        assert!(matches!(
            parse_redirect(
                "https://accounts.spotify.com/authorize?client_id=a&response_type=code&state=s"
            ),
            Err(LinkError::PastedAuthorizeUrl)
        ));
    }

    #[test]
    fn a_refused_refresh_token_is_revoked_unless_its_six_months_are_up() {
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        assert_eq!(refused_status(now + day * 90, now), LinkStatus::Revoked);
        assert_eq!(refused_status(now + day * 2, now), LinkStatus::Revoked);
        assert_eq!(
            refused_status(now + chrono::Duration::hours(3), now),
            LinkStatus::Expired
        );
        assert_eq!(refused_status(now - day, now), LinkStatus::Expired);
    }

    #[test]
    fn states_are_long_and_distinct() {
        let a = new_state();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_state());
    }
}
