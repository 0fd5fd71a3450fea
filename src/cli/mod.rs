//! The `roster` command line: serve the API, manage plans and tokens, run migrations.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod files;

use crate::api::{self, AppState, auth};
use crate::domain::ids::PlanId;
use crate::domain::msisdn::RegionCode;
use crate::domain::scope::Scopes;
use crate::send::Sender;
use crate::send::dispatcher::{DispatchConfig, Dispatcher};
use crate::send::http::HttpSender;
use crate::send::log::LogSender;
use crate::store;
use crate::store::{Actor, TokenGrant};

const EXAMPLES: &str = "\
Examples:
  roster serve                                   # SQLite file roster.db, http://127.0.0.1:8080
  roster serve --listen 0.0.0.0:8080 --database postgres://roster@db/roster
  ROSTER_UPSTREAM_TOKEN=… roster serve --sender http --upstream-url https://us.sms.api.sinch.com \\
      --upstream-plan 3f2a…
  roster plans create \"Acme SMS\" --default-region US
  roster tokens create 5b3f0c6e9a1d4e2f8c7b6a5d4e3f2a1b
  roster tokens revoke rst_9f2c…
  roster import customers.csv --plan 5b3f0c6e… --group \"Spring sale\" --default-region GB
  roster import people.xlsx --plan 5b3f0c6e… --map Mobile=phone --map 4=fields.city --errors rejected.csv
  roster export --plan 5b3f0c6e… --format xlsx -o contacts.xlsx
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
    /// Seconds a write waits to start before it is refused (503 with Retry-After on the API):
    /// on SQLite, for the single writer, which an import holds while it writes; on PostgreSQL,
    /// for a free connection.
    #[arg(long, env = "ROSTER_WRITE_WAIT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    write_wait_seconds: u64,
}

impl DatabaseArg {
    async fn connect(&self) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
        let options = store::StoreOptions {
            write_wait: Duration::from_secs(self.write_wait_seconds),
        };
        Ok(store::connect_with(&self.url, options).await?)
    }
}

/// Where due batches go, and how they are claimed and retried.
#[derive(Args, Clone)]
struct SendingArgs {
    /// `log` (one JSON line per message appended to --sender-log), `http` (a Sinch-compatible
    /// upstream) or `off` (this instance serves the API and sends nothing).
    #[arg(long, env = "ROSTER_SENDER", default_value = "log", value_parser = ["log", "http", "off"])]
    sender: String,
    /// The file the `log` sender appends to.
    #[arg(
        long,
        env = "ROSTER_SENDER_LOG",
        default_value = "roster-messages.jsonl"
    )]
    sender_log: std::path::PathBuf,
    /// The `http` sender's upstream base URL, e.g. https://us.sms.api.sinch.com.
    #[arg(long, env = "ROSTER_UPSTREAM_URL")]
    upstream_url: Option<String>,
    /// The upstream's service plan id.
    #[arg(long, env = "ROSTER_UPSTREAM_PLAN")]
    upstream_plan: Option<String>,
    /// The upstream's API token (prefer the environment variable: arguments are visible to
    /// other users of the machine).
    #[arg(long, env = "ROSTER_UPSTREAM_TOKEN", hide_env_values = true)]
    upstream_token: Option<String>,
    /// Seconds before an upstream request is given up (and retried).
    #[arg(long, env = "ROSTER_UPSTREAM_TIMEOUT", default_value_t = 10)]
    upstream_timeout: u64,
    /// Where the upstream posts delivery reports: Roster's `/api/delivery-reports`, as the
    /// upstream reaches it (the `http` sender asks for a final report per recipient).
    #[arg(long, env = "ROSTER_DELIVERY_REPORT_URL")]
    delivery_report_url: Option<String>,
    /// Recipients per hand-over to the sender [default: 1000 for `http`, as Sinch takes at most
    /// 1000 a batch; 10000 for `log`, whose cost per chunk is one fdatasync].
    #[arg(long, env = "ROSTER_CHUNK_SIZE", value_parser = clap::value_parser!(i64).range(1..=100_000))]
    chunk_size: Option<i64>,
    /// Batches this instance sends at once.
    #[arg(long, env = "ROSTER_SEND_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    send_workers: u16,
    /// Seconds a claim on a batch lasts without renewal: how soon another instance takes over
    /// the batches of one that died.
    #[arg(long, env = "ROSTER_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_seconds: u64,
    /// Tries per chunk before the batch fails; waits double from 0.5 s up to 30 s between them.
    #[arg(long, env = "ROSTER_SEND_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    send_attempts: u32,
    /// Milliseconds before the first retry of a chunk.
    #[arg(long, env = "ROSTER_RETRY_INITIAL_MS", default_value_t = 500)]
    retry_initial_ms: u64,
    /// Milliseconds between looks for due batches.
    #[arg(long, env = "ROSTER_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
}

impl SendingArgs {
    /// The configured sender, or `None` when sending is off.
    fn sender(&self) -> anyhow::Result<Option<Arc<dyn Sender>>> {
        Ok(match self.sender.as_str() {
            "off" => None,
            "http" => {
                let missing = |name: &str| anyhow::anyhow!("--sender http needs --{name}");
                let url = self
                    .upstream_url
                    .as_deref()
                    .ok_or_else(|| missing("upstream-url"))?;
                let plan = self
                    .upstream_plan
                    .as_deref()
                    .ok_or_else(|| missing("upstream-plan"))?;
                let token = self
                    .upstream_token
                    .as_deref()
                    .ok_or_else(|| missing("upstream-token (or ROSTER_UPSTREAM_TOKEN)"))?;
                let timeout = Duration::from_secs(self.upstream_timeout.max(1));
                Some(Arc::new(HttpSender::new(
                    url,
                    plan,
                    token,
                    timeout,
                    self.delivery_report_url.as_deref(),
                )?))
            }
            _ => Some(Arc::new(LogSender::open(&self.sender_log).map_err(
                |error| {
                    anyhow::anyhow!(
                        "cannot open --sender-log {}: {error}",
                        self.sender_log.display()
                    )
                },
            )?)),
        })
    }

    fn config(&self) -> DispatchConfig {
        DispatchConfig {
            chunk_size: self.chunk_size.unwrap_or(match self.sender.as_str() {
                "http" => 1000,
                _ => 10_000,
            }),
            lease: Duration::from_secs(self.lease_seconds),
            workers: usize::from(self.send_workers),
            poll: Duration::from_millis(self.poll_ms),
            initial_backoff: Duration::from_millis(self.retry_initial_ms),
            max_backoff: Duration::from_secs(30),
            max_attempts: self.send_attempts,
        }
    }
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
        /// Seconds a verified API token is remembered: a revoked token is refused within this
        /// long. 0 checks every request against the database.
        #[arg(long, env = "ROSTER_TOKEN_CACHE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=300))]
        token_cache_seconds: u64,
        /// Seconds a claim on a running import or export lasts without renewal: how soon one
        /// interrupted by a crash is reported failed and an import may be committed again.
        #[arg(long, env = "ROSTER_JOB_LEASE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=3600))]
        job_lease_seconds: u64,
        /// Seconds a client has to send a request's headers; slower connections are closed.
        #[arg(long, env = "ROSTER_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_timeout: u64,
        /// Seconds a request body may stall between two parts before the request gets 408.
        #[arg(long, env = "ROSTER_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        body_timeout: u64,
        /// Seconds a request may take to be answered before it gets 503 (streamed bodies may
        /// take longer once begun).
        #[arg(long, env = "ROSTER_REQUEST_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86400))]
        request_timeout: u64,
        /// A header naming the client's address (`X-Forwarded-For`), set by a proxy in front of
        /// Roster: the audit log records the last address it lists. Without it, the address is
        /// the connection's peer.
        #[arg(long, env = "ROSTER_CLIENT_ADDRESS_HEADER")]
        client_address_header: Option<axum::http::HeaderName>,
        /// Whether this instance delivers webhook events (`false` for instances that only serve
        /// the API while others deliver).
        #[arg(long, env = "ROSTER_DELIVER_WEBHOOKS", default_value_t = true, action = clap::ArgAction::Set)]
        deliver_webhooks: bool,
        /// Let webhooks point at private, loopback and link-local addresses (a receiver on the
        /// same network); off by default, so that a plan's admin cannot reach internal services.
        #[arg(long, env = "ROSTER_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
        webhook_allow_private: bool,
        /// Seconds a webhook receiver has to answer before the attempt counts as failed.
        #[arg(long, env = "ROSTER_WEBHOOK_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
        webhook_timeout: u64,
        /// Webhook deliveries this instance attempts at once.
        #[arg(long, env = "ROSTER_WEBHOOK_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        webhook_concurrency: u64,
        /// Hours of nothing but failed attempts (20 at least) after which a webhook is disabled.
        #[arg(long, env = "ROSTER_WEBHOOK_DISABLE_AFTER_HOURS", default_value_t = 72, value_parser = clap::value_parser!(u64).range(1..=8760))]
        webhook_disable_after_hours: u64,
        /// Delivery report codes that mean the recipient opted out at the carrier (comma-
        /// separated): a report with one opts the contact out, with the source `carrier`.
        #[arg(long, env = "ROSTER_OPT_OUT_CODES", default_value = "21610,40300,200,4775", value_parser = crate::domain::delivery::OptOutCodes::parse)]
        opt_out_codes: crate::domain::delivery::OptOutCodes,
        /// Days the audit log keeps a row; older rows are removed hourly.
        #[arg(long, env = "ROSTER_AUDIT_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=36500))]
        audit_retention_days: u64,
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        sending: SendingArgs,
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
    /// Import contacts from a file (CSV, XLSX, XLS, ODS, vCard) in one transaction, with a
    /// report at the end; exits non-zero when nothing was imported.
    Import(files::ImportArgs),
    /// Export contacts (all, a group's, or a filter's) as CSV, XLSX or vCard.
    Export(files::ExportArgs),
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
    /// Create another API token for a plan; prints `{"service_plan_id", "api_token", "id",
    /// "name", "scopes"}`.
    Create {
        /// The plan's id.
        plan_id: String,
        /// What the token is for, shown when the plan's tokens are listed.
        #[arg(long)]
        name: Option<String>,
        /// What the token may do: read, write (includes read), send (includes read), admin
        /// (everything).
        /// Repeatable or comma-separated; every scope if none is given.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
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
        // Colour codes only on a terminal: logs written to a file stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            token_cache_seconds,
            job_lease_seconds,
            header_timeout,
            body_timeout,
            request_timeout,
            client_address_header,
            deliver_webhooks,
            webhook_allow_private,
            webhook_timeout,
            webhook_concurrency,
            webhook_disable_after_hours,
            opt_out_codes,
            audit_retention_days,
            database,
            sending,
        } => {
            let timeouts = api::Timeouts {
                header: Duration::from_secs(header_timeout),
                body: Duration::from_secs(body_timeout),
                request: Duration::from_secs(request_timeout),
            };
            let sender = sending.sender()?;
            let store = database.connect().await?;
            let listener = TcpListener::bind(listen).await?;
            tracing::info!(address = %listener.local_addr()?, database = %redact(&database.url), sender = %sending.sender, "serving");
            let state = AppState::new(store.clone(), rate_limit)
                .with_token_cache(Duration::from_secs(token_cache_seconds))
                .with_job_lease(Duration::from_secs(job_lease_seconds))
                .with_private_webhooks(webhook_allow_private)
                .with_opt_out_codes(opt_out_codes);
            let (stop, stopped) = watch::channel(false);
            let retention = tokio::spawn(api::retention::prune_logs(
                store.clone(),
                audit_retention_days,
                stopped.clone(),
            ));
            let deliverer = crate::webhooks::Deliverer::new(
                store.clone(),
                crate::webhooks::DeliveryConfig {
                    concurrency: webhook_concurrency as usize,
                    timeout: Duration::from_secs(webhook_timeout),
                    disable_after: Duration::from_secs(webhook_disable_after_hours * 60 * 60),
                    allow_private: webhook_allow_private,
                    ..Default::default()
                },
            )?;
            let deliverer = deliver_webhooks.then(|| tokio::spawn(deliverer.run(stopped.clone())));
            let dispatcher = sender.map(|sender| {
                let dispatcher =
                    Dispatcher::new(store, sender, sending.config(), state.wake.clone());
                tokio::spawn(dispatcher.run(stopped))
            });
            let shutdown = async move {
                api::shutdown_signal().await;
                // Senders finish the chunk in hand while requests in flight complete.
                let _ = stop.send(true);
            };
            api::serve_router(
                listener,
                crate::app(state),
                timeouts,
                client_address_header,
                shutdown,
            )
            .await?;
            if let Some(dispatcher) = dispatcher {
                dispatcher.await?;
            }
            retention.await?;
            if let Some(deliverer) = deliverer {
                deliverer.await?;
            }
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
            let store = database.connect().await?;
            let plan = store
                .create_plan(&name, region.map(|r| r.as_str()).as_deref(), &Actor::cli())
                .await?;
            let token = auth::generate_token();
            store
                .add_token(
                    &plan.id,
                    &Actor::cli(),
                    &auth::hash_token(&token),
                    &TokenGrant::full(),
                )
                .await?;
            println!(
                "{}",
                json!({"service_plan_id": plan.id.as_str(), "api_token": token})
            );
        }
        Command::Tokens {
            command:
                TokenCommand::Create {
                    plan_id,
                    name,
                    scopes,
                    database,
                },
        } => {
            let plan = PlanId::parse(&plan_id)
                .ok_or_else(|| anyhow::anyhow!("{plan_id:?} is not a plan id"))?;
            let grant = TokenGrant {
                name: name
                    .map(|name| {
                        crate::domain::scope::token_name(&name)
                            .map_err(|error| anyhow::anyhow!("--name {error}"))
                    })
                    .transpose()?,
                scopes: if scopes.is_empty() {
                    Scopes::FULL
                } else {
                    Scopes::parse(&scopes.join(",")).map_err(|unknown| {
                        anyhow::anyhow!(
                            "--scope {unknown:?} is not a scope: use read, write, send or admin"
                        )
                    })?
                },
            };
            if grant.scopes.is_empty() {
                anyhow::bail!("--scope names no scope: use read, write, send or admin");
            }
            let store = database.connect().await?;
            let token = auth::generate_token();
            let record = match store
                .add_token(&plan, &Actor::cli(), &auth::hash_token(&token), &grant)
                .await
            {
                Err(store::StoreError::NotFound(_)) => {
                    anyhow::bail!("no plan with id {plan_id}")
                }
                other => other?,
            };
            println!(
                "{}",
                json!({
                    "service_plan_id": plan.as_str(),
                    "api_token": token,
                    "id": record.id,
                    "name": record.name,
                    "scopes": record.scopes.list().iter().map(|scope| scope.as_str()).collect::<Vec<_>>(),
                })
            );
        }
        Command::Tokens {
            command: TokenCommand::Revoke { token, database },
        } => {
            let store = database.connect().await?;
            match store
                .revoke_token(&auth::hash_token(token.trim()), &Actor::cli())
                .await
            {
                Err(store::StoreError::NotFound(_)) => {
                    anyhow::bail!("no active token matches")
                }
                Ok(plan) => println!(
                    "{}",
                    json!({"service_plan_id": plan.as_str(), "revoked": true})
                ),
                Err(other) => return Err(other.into()),
            }
        }
        Command::Import(args) => files::import(args).await?,
        Command::Export(args) => files::export(args).await?,
        Command::Migrate { database } => {
            database.connect().await?;
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
