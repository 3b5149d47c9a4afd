//! `/status`, `/settings`, `/setup`, `/help`.

use poise::serenity_prelude as serenity;

use super::{Context, Data, Error, member, private, thousands};
use crate::discord::backend::LinkState;
use crate::discord::error::user_error;
use crate::discord::render::{self, percent};
use crate::domain::{MemberId, Motherlist};

/// Your link, sync, labels, models, jobs, and whether Spotify paused the bot
#[poise::command(slash_command)]
pub async fn status(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    ctx.defer_ephemeral().await?;
    let data = ctx.data();
    let st = data.backend.status(member).await?;
    let mut out = String::new();
    match &st.link {
        LinkState::NotLinked => out.push_str("**Spotify**: not linked. Use `/link`.\n"),
        LinkState::Expired => out.push_str(
            "**Spotify**: the link expired (Spotify ends links six months after you authorize). \
             Use `/link` again.\n",
        ),
        LinkState::Revoked => out.push_str(
            "**Spotify**: Spotify no longer accepts sublist's access to your account (it was \
             removed on Spotify's side). Use `/link` again.\n",
        ),
        LinkState::Linked {
            display_name,
            expires_at,
        } => out.push_str(&format!(
            "**Spotify**: linked as {display_name}; the link expires <t:{}:R>.\n",
            expires_at.timestamp()
        )),
    }
    out.push_str(&match st.last_sync {
        Some(t) => format!(
            "**Sync**: {} liked songs, last synced <t:{}:R>.\n",
            thousands(st.liked_songs),
            t.timestamp()
        ),
        None => "**Sync**: not synced yet.\n".to_string(),
    });
    if let Some(until) = st.quota_paused_until {
        out.push_str(&format!(
            "**Paused**: Spotify's daily quota is used up; work resumes <t:{}:R>.\n",
            until.timestamp()
        ));
    }
    let layers = data.store.layers(member).await?;
    for layer in &layers {
        let counts = data.store.label_counts(layer.id).await?;
        let per: Vec<String> = layer
            .sublists
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s.emoji,
                    counts.by_sublist.get(&s.id).copied().unwrap_or(0)
                )
            })
            .collect();
        let model = match super::model_accuracy(ctx, layer.id).await? {
            Some(a) => format!("model {}", percent(a)),
            None => "no model".to_string(),
        };
        out.push_str(&format!(
            "**{}**: {} · {model}\n",
            layer.name,
            if per.is_empty() {
                "no sublists".to_string()
            } else {
                per.join(" · ")
            }
        ));
    }
    if st.jobs.is_empty() {
        out.push_str("**Jobs**: none queued.\n");
    } else {
        for j in &st.jobs {
            out.push_str(&match j.position {
                Some(p) => format!("**Job**: {} (queued, position {p})\n", j.what),
                None => format!("**Job**: {} (running)\n", j.what),
            });
        }
    }
    ctx.send(private(out)).await?;
    Ok(())
}

/// Where prompts go.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum PromptPlace {
    #[name = "in my DMs"]
    Dm,
    #[name = "in the server's prompt channel"]
    Channel,
}

/// Autocomplete: "Liked Songs" and the member's playlists.
async fn autocomplete_motherlist(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let member = MemberId(ctx.author().id.get());
    let mut items = vec![("Liked Songs".to_string(), LIKED.to_string())];
    if let Ok(playlists) = ctx.data().backend.playlists(member).await {
        items.extend(playlists.into_iter().map(|p| (p.name, p.id)));
    }
    super::choices(items, partial)
}

const LIKED: &str = "liked";

/// Your motherlist, where prompts go, auto-sort, and when the bot asks instead of sorting
#[poise::command(slash_command)]
pub async fn settings(
    ctx: Context<'_>,
    #[description = "Where new tracks come from: Liked Songs or one of your playlists"]
    #[autocomplete = "autocomplete_motherlist"]
    motherlist: Option<String>,
    #[description = "Where questions about new tracks go"] prompts: Option<PromptPlace>,
    #[description = "Sort tracks the model is sure about without asking"] auto_sort: Option<bool>,
    #[description = "Ask instead of sorting when the model is less sure than this (percent)"]
    #[min = 0]
    #[max = 100]
    ask_below: Option<i64>,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let data = ctx.data();
    let store = &data.store;
    let mut s = crate::discord::prompts::member_settings(store, member).await?;
    if let Some(m) = motherlist {
        let m = m.trim();
        let value = if m == LIKED || m.eq_ignore_ascii_case("liked songs") {
            Motherlist::LikedSongs
        } else {
            let playlists = data.backend.playlists(member).await?;
            match playlists
                .iter()
                .find(|p| p.id == m || p.name.eq_ignore_ascii_case(m))
            {
                Some(p) => Motherlist::Playlist(p.id.clone()),
                None => {
                    return Err(user_error(format!(
                        "You have no playlist “{}” that you own or collaborate on.",
                        render::truncate(m, 100)
                    )));
                }
            }
        };
        s.motherlist = value;
    }
    if let Some(place) = prompts {
        s.prompts_in_dm = matches!(place, PromptPlace::Dm);
    }
    if let Some(on) = auto_sort {
        s.auto_sort = on;
    }
    if let Some(p) = ask_below {
        if !(0..=100).contains(&p) {
            return Err(user_error(format!(
                "`ask_below` is a percentage from 0 to 100, not {p}."
            )));
        }
        s.ask_below = p as f32 / 100.0;
    }
    store.set_member_settings(member, &s).await?;
    let mother = match &s.motherlist {
        Motherlist::LikedSongs => "Liked Songs".to_string(),
        Motherlist::Playlist(id) => format!("the playlist `{id}`"),
    };
    ctx.send(private(format!(
        "**Motherlist**: {mother}\n**Prompts**: {}\n**Auto-sort**: {}\n**Ask when less sure than**: {}",
        if s.prompts_in_dm {
            "in your DMs"
        } else {
            "in the server's prompt channel"
        },
        if s.auto_sort { "on" } else { "off" },
        percent(s.ask_below)
    )))
    .await?;
    Ok(())
}

/// Choose this server's channels for announcements and prompts (server managers)
#[poise::command(slash_command, guild_only, default_member_permissions = "MANAGE_GUILD")]
pub async fn setup(
    ctx: Context<'_>,
    #[description = "Where refreshes, expiry warnings and pauses are announced"]
    #[channel_types("Text")]
    announcements: Option<serenity::ChannelId>,
    #[description = "Where prompts go for members who want them in the server"]
    #[channel_types("Text")]
    prompts: Option<serenity::ChannelId>,
) -> Result<(), Error> {
    let Some(guild) = ctx.guild_id() else {
        return Err(user_error("This command works only in a server."));
    };
    // Discord enforces `default_member_permissions`, but a server can override it: check too.
    let allowed = match ctx {
        poise::Context::Application(a) => a
            .interaction
            .member
            .as_ref()
            .and_then(|m| m.permissions)
            .is_some_and(|p| p.manage_guild() || p.administrator()),
        poise::Context::Prefix(_) => false,
    };
    if !allowed {
        return Err(user_error("Only server managers can use `/setup`."));
    }
    member(ctx).await?;
    let store = &ctx.data().store;
    let mut current = store.guild_settings(guild.get()).await?;
    if let Some(c) = announcements {
        current.announce_channel = Some(c.get());
    }
    if let Some(c) = prompts {
        current.prompt_channel = Some(c.get());
    }
    store
        .set_guild_channels(
            guild.get(),
            current.announce_channel,
            current.prompt_channel,
        )
        .await?;
    let show = |c: Option<u64>| c.map_or("not set (DMs)".to_string(), |c| format!("<#{c}>"));
    let mut text = format!(
        "**Announcements**: {}\n**Prompts**: {}",
        show(current.announce_channel),
        show(current.prompt_channel)
    );
    if let Some(c) = current.prompt_channel.or(current.announce_channel) {
        text.push_str(&format!(
            "\nIn <#{c}> I need {}. *Manage Messages* lets me remove reactions other members \
             add to someone's prompt: they never count as answers, but would look like one.",
            INVITE_PERMISSIONS.join(", ")
        ));
    }
    ctx.send(private(text)).await?;
    Ok(())
}

/// The permissions the bot uses in a server channel, as Discord names them; the README's
/// invite asks for each.
pub(crate) const INVITE_PERMISSIONS: [&str; 5] = [
    "Send Messages",
    "Embed Links",
    "Add Reactions",
    "Read Message History",
    "Manage Messages",
];

/// The help text: every command and subcommand with its description.
pub(crate) fn help_text(commands: &[poise::Command<Data, Error>]) -> String {
    let mut out = String::from("**sublist** keeps your Spotify playlists sorted. Commands:\n");
    fn walk(out: &mut String, prefix: &str, cmds: &[poise::Command<Data, Error>]) {
        for c in cmds {
            if c.hide_in_help {
                continue;
            }
            let name = format!("{prefix}{}", c.name);
            if c.subcommands.is_empty() {
                out.push_str(&format!(
                    "`/{name}`: {}\n",
                    c.description.as_deref().unwrap_or("")
                ));
            } else {
                walk(out, &format!("{name} "), &c.subcommands);
            }
        }
    }
    walk(&mut out, "", commands);
    out
}

/// Every command and what it does
#[poise::command(slash_command)]
pub async fn help(ctx: Context<'_>) -> Result<(), Error> {
    let text = help_text(&ctx.framework().options().commands);
    ctx.send(private(text)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_invite_asks_for_every_permission_the_bot_uses() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let invite = readme
            .lines()
            .skip_while(|l| !l.contains("URL Generator"))
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        for p in INVITE_PERMISSIONS {
            assert!(
                invite.contains(&format!("*{p}*")),
                "{p} missing from: {invite}"
            );
        }
    }
}
