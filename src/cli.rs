//! The command line: `run`, `demo`, `eval`, `bench`, `check-config`, `migrate`, `gen-key`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

#[derive(Debug, Parser)]
#[command(
    name = "sublist",
    version,
    about = "Keeps your Spotify playlists sorted by a small model trained on your own choices, from Discord."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot: Discord, the OAuth callback server, the scheduler and the workers.
    Run {
        /// The configuration file; every key can also come from SUBLIST_* variables.
        #[arg(long, short, env = "SUBLIST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the whole pipeline offline on a bundled sample of real playlists.
    Demo(crate::tools::demo::DemoArgs),
    /// Measure sorting quality on the evaluation protocol (src/tools/eval/README.md), on the
    /// built-in data set.
    Eval(crate::tools::eval::EvalArgs),
    /// Validate a configuration file and say what is missing or wrong, key by key.
    CheckConfig {
        /// The configuration file (environment overrides apply too).
        path: Option<PathBuf>,
    },
    /// Create or upgrade the database, then exit.
    Migrate {
        #[arg(long, short, env = "SUBLIST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Benchmark training and scoring (CPU, and the GPU where one exists), each model scored
    /// on the device it trained on.
    Bench(crate::tools::bench::BenchArgs),
    /// Print a new random encryption key for `store.encryption_key`.
    GenKey,
}

/// Parses the command line, runs the command, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,serenity=warn,sqlx=warn"));
    for quiet in crate::spotify::QUIET_LOG_TARGETS {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { path } => Ok(check_config(path)),
        Command::GenKey => {
            println!("{}", config::generate_key());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config } => {
            let config = Config::load(config.as_deref())?;
            let key = secrecy::ExposeSecret::expose_secret(&*config.store.encryption_key);
            let n = runtime()?
                .block_on(crate::store::Store::migrate_at(&config.store.database, key))?;
            println!(
                "{}: {n} migration(s) applied",
                config.store.database.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let config = Config::load(config.as_deref())?;
            runtime()?.block_on(crate::app::run::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            crate::tools::demo::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            crate::tools::bench::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            crate::tools::eval::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match Config::load(path.as_deref()) {
        Ok(c) => {
            println!(
                "configuration OK: {} Spotify app(s) with room for {} member(s); database {}; callback on {}{}",
                c.spotify.apps.len(),
                c.spotify.apps.iter().map(|a| a.user_cap).sum::<u32>(),
                c.store.database.display(),
                c.web.listen,
                c.web.callback_path,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}
