//! The hottest PostgreSQL reads (a group, a page of a lone group's members) on connections held
//! outside sqlx's pool. The pool pings a connection as it hands it out and again as it takes it
//! back, so a one-statement read cost three round trips to the server; here it costs one. A
//! connection that fails is dropped, and a read that failed on a connection kept from earlier
//! (the server restarted, say) is tried once more on a new one: these reads change nothing.

use std::sync::Mutex;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Semaphore;

use super::{StoreError, StoreResult};

/// At most this many of these reads run at once per process (each on its own connection); the
/// connections stay open between reads.
const CONNECTIONS: usize = 8;

pub(super) struct DirectReader {
    options: PgConnectOptions,
    permits: Semaphore,
    idle: Mutex<Vec<PgConnection>>,
}

impl DirectReader {
    pub(super) fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            permits: Semaphore::new(CONNECTIONS),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on a connection of its own.
    pub(super) async fn read<T>(
        &self,
        read: impl for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> StoreResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut kept = self.idle_connection();
        loop {
            let reused = kept.is_some();
            let mut conn = match kept.take() {
                Some(conn) => conn,
                None => self.options.connect().await?,
            };
            match read(&mut conn).await {
                Ok(value) => {
                    self.give_back(conn);
                    return Ok(value);
                }
                Err(error) if is_connection_lost(&error) => {
                    let _ = conn.close_hard().await;
                    if !reused {
                        return Err(StoreError::Database(error));
                    }
                }
                Err(error) => {
                    self.give_back(conn);
                    return Err(StoreError::Database(error));
                }
            }
        }
    }

    fn idle_connection(&self) -> Option<PgConnection> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, conn: PgConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

/// The connection, not the statement, failed: it cannot be used again.
fn is_connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        // Class 08 (connection exception) and 57P (operator intervention: the server is
        // shutting down or restarting).
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}
