//! The `roster` command line: serve the API, manage plans and tokens, run migrations.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tokio::net::TcpListener;

use crate::api::{self, AppState, auth};
use crate::domain::ids::PlanId;
use crate::domain::msisdn::RegionCode;
use crate::store;

const EXAMPLES: &str = "\
Examples:
  roster serve                                   # SQLite file roster.db, http://127.0.0.1:8080
  roster serve --listen 0.0.0.0:8080 --database postgres://roster@db/roster
  roster plans create \"Acme SMS\" --default-region US
  roster tokens create 5b3f0c6e9a1d4e2f8c7b6a5d4e3f2a1b
  roster tokens revoke rst_9f2c…
  roster migrate --database postgres://roster@db/roster";

#[derive(Parser)]
#[command(name = "roster", version, about = "Contacts and contact groups for SMS, resolved at send time", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DatabaseArg {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long = "database",
        env = "ROSTER_DATABASE_URL",
        default_value = "sqlite://roster.db"
    )]
    url: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (migrations run first; SIGTERM shuts down gracefully).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Requests per second allowed per API token (bursts of twice that pass); 0 for no limit.
        /// Over the limit a request gets 429 with Retry-After.
        #[arg(long, env = "ROSTER_RATE_LIMIT", default_value_t = 0)]
        rate_limit: u32,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Manage service plans (tenants).
    Plans {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Manage API tokens.
    Tokens {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Bring the database schema up to date, then exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Create a plan and its first API token; prints `{"service_plan_id", "api_token"}`.
    Create {
        /// A name for the plan.
        name: String,
        /// Region (ISO 3166-1 alpha-2) for national-format numbers, e.g. US.
        #[arg(long)]
        default_region: Option<String>,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create another API token for a plan; prints `{"service_plan_id", "api_token"}`.
    Create {
        /// The plan's id.
        plan_id: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Revoke a token: it is refused from then on. Tokens are stored hashed, so the token itself
    /// is what names it.
    Revoke {
        /// The token (`rst_…`).
        token: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("roster=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            listen,
            rate_limit,
            database,
        } => {
            let store = store::connect(&database.url).await?;
            let listener = TcpListener::bind(listen).await?;
            tracing::info!(address = %listener.local_addr()?, database = %redact(&database.url), "serving");
            api::serve(listener, AppState::new(store, rate_limit)).await?;
        }
        Command::Plans {
            command:
                PlanCommand::Create {
                    name,
                    default_region,
                    database,
                },
        } => {
            let region = default_region
                .as_deref()
                .map(|code| {
                    RegionCode::parse(code)
                        .map_err(|error| anyhow::anyhow!("--default-region {code:?} {error}"))
                })
                .transpose()?;
            let store = store::connect(&database.url).await?;
            let plan = store
                .create_plan(&name, region.map(|r| r.as_str()).as_deref())
                .await?;
            let token = auth::generate_token();
            store.add_token(&plan.id, &auth::hash_token(&token)).await?;
            println!(
                "{}",
                json!({"service_plan_id": plan.id.as_str(), "api_token": token})
            );
        }
        Command::Tokens {
            command: TokenCommand::Create { plan_id, database },
        } => {
            let plan = PlanId::parse(&plan_id)
                .ok_or_else(|| anyhow::anyhow!("{plan_id:?} is not a plan id"))?;
            let store = store::connect(&database.url).await?;
            let token = auth::generate_token();
            match store.add_token(&plan, &auth::hash_token(&token)).await {
                Err(store::StoreError::NotFound) => {
                    anyhow::bail!("no plan with id {plan_id}")
                }
                other => other?,
            }
            println!(
                "{}",
                json!({"service_plan_id": plan.as_str(), "api_token": token})
            );
        }
        Command::Tokens {
            command: TokenCommand::Revoke { token, database },
        } => {
            let store = store::connect(&database.url).await?;
            match store.revoke_token(&auth::hash_token(token.trim())).await {
                Err(store::StoreError::NotFound) => {
                    anyhow::bail!("no active token matches")
                }
                Ok(plan) => println!(
                    "{}",
                    json!({"service_plan_id": plan.as_str(), "revoked": true})
                ),
                Err(other) => return Err(other.into()),
            }
        }
        Command::Migrate { database } => {
            store::connect(&database.url).await?;
            eprintln!("database is up to date");
        }
    }
    Ok(())
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_from_logs() {
        assert_eq!(
            redact("postgres://roster:secret@db/roster"),
            "postgres://roster:***@db/roster"
        );
        assert_eq!(
            redact("postgres://roster@db/roster"),
            "postgres://roster@db/roster"
        );
        assert_eq!(redact("sqlite://roster.db"), "sqlite://roster.db");
    }
}
