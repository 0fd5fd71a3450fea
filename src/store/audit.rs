//! The audit log: who changed what, written by every store method that changes a plan's data, in
//! the transaction of the change, so that a change is never without its row nor a row without
//! its change.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{ChangeSource, StoreResult, TOKEN_ID_CHARS};
use crate::domain::ids::PlanId;
use crate::domain::time::Timestamp;

/// How a change came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A client of the HTTP API.
    Api,
    /// An operator on the web page.
    Page,
    /// The `roster` command on the server.
    Cli,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Page => "page",
            Self::Cli => "cli",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "api" => Some(Self::Api),
            "page" => Some(Self::Page),
            "cli" => Some(Self::Cli),
            _ => None,
        }
    }
}

/// Who makes a change: every store method that changes a plan's data takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub channel: Channel,
    /// The token of the request (of the session, on the web page): the start of its hash, which
    /// the token list shows as its id.
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    /// The client's address, as the server saw it.
    pub address: Option<String>,
}

impl Actor {
    /// A request authorised by the token with this hash.
    pub fn token(
        channel: Channel,
        token_hash: &str,
        token_name: Option<String>,
        address: Option<String>,
    ) -> Self {
        Self {
            channel,
            token_id: Some(token_hash.chars().take(TOKEN_ID_CHARS).collect()),
            token_name,
            address,
        }
    }

    /// The command line on the server.
    pub fn cli() -> Self {
        Self {
            channel: Channel::Cli,
            token_id: None,
            token_name: None,
            address: None,
        }
    }

    /// The source a consent row records for a change this actor makes (the command line
    /// changes consent only as an API client would).
    pub fn source(&self) -> ChangeSource {
        match self.channel {
            Channel::Page => ChangeSource::Page,
            Channel::Api | Channel::Cli => ChangeSource::Api,
        }
    }
}

/// The most ids an audit row lists; a change of more lists the first ones and counts them all
/// (`objects_total` in its summary).
pub const AUDIT_OBJECTS: usize = 100;

/// A change as its audit row describes it: the operation, the ids it changed and a summary of
/// names and counts.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) operation: &'static str,
    pub(crate) objects: Vec<String>,
    pub(crate) summary: Map<String, Value>,
}

impl Change {
    pub(crate) fn new<I, S>(operation: &'static str, objects: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut total = 0usize;
        let mut listed = Vec::new();
        for object in objects {
            total += 1;
            if listed.len() < AUDIT_OBJECTS {
                listed.push(object.as_ref().to_owned());
            }
        }
        let mut summary = Map::new();
        if total > listed.len() {
            summary.insert("objects_total".into(), total.into());
        }
        Self {
            operation,
            objects: listed,
            summary,
        }
    }

    /// A change of no object by id (a sign-in, say).
    pub(crate) fn named(operation: &'static str) -> Self {
        Self::new(operation, std::iter::empty::<&str>())
    }

    /// Adds a name and a value (a count, a status, field names) to the summary.
    pub(crate) fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.summary.insert(name.to_owned(), value.into());
        self
    }

    /// Adds the names of the fields that are `Some`, under `fields`, when there are any.
    pub(crate) fn fields(self, fields: &[(&str, bool)]) -> Self {
        let named: Vec<Value> = fields
            .iter()
            .filter(|(_, given)| *given)
            .map(|(name, _)| Value::from(*name))
            .collect();
        if named.is_empty() {
            self
        } else {
            self.with("fields", named)
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub channel: Channel,
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    pub address: Option<String>,
    pub operation: String,
    pub objects: Vec<String>,
    pub summary: Value,
}

/// Which audit rows to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// An operation (`group.update`), or a kind of object (`group`) for all of its operations.
    pub operation: Option<String>,
    /// Rows that changed this object (an id).
    pub object: Option<String>,
    /// Rows made with this token, by name or id.
    pub token: Option<String>,
    pub channel: Option<Channel>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// A `next` the previous page gave.
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page, when there are more rows.
    pub next: Option<String>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// A page of the plan's audit log, newest first; `ForeignCursor` for a cursor of another
    /// plan or one altered.
    async fn audit_log(&self, plan: &PlanId, query: &AuditQuery) -> StoreResult<AuditPage>;
    /// Removes the rows of every plan older than `before`, in bounded batches; returns how many.
    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64>;
}
