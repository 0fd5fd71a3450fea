//! The SQLite side of the HTTP benchmarks: one statement executed over and over on THREADS
//! threads (one connection each, read-only, the server's settings) for SECONDS, with the same
//! SQLite library `roster serve` is built with, its parameters bound as the server binds them
//! (a value that reads as an integer is bound as one). It prints executions per second: the most
//! the database alone does for the read an HTTP request makes (`bench/load.py` reports the ratio).
//!
//!     cargo run --release --example sqlite_loop -- DB_PATH SECONDS THREADS 'SELECT …' [PARAM…]

use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params_from_iter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, seconds, threads, sql, params @ ..] = args.as_slice() else {
        return Err("usage: sqlite_loop DB_PATH SECONDS THREADS SQL [PARAM…]".into());
    };
    let params: Vec<Value> = params
        .iter()
        .map(|param| match param.parse::<i64>() {
            Ok(number) => Value::Integer(number),
            Err(_) => Value::Text(param.clone()),
        })
        .collect();
    let seconds: f64 = seconds.parse()?;
    let threads: usize = threads.parse()?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (path, sql, params) = (path.clone(), sql.clone(), params.clone());
            std::thread::spawn(move || run(&path, &sql, &params, deadline))
        })
        .collect();
    let mut total = 0u64;
    for worker in workers {
        total += worker.join().map_err(|_| "a worker panicked")??;
    }
    println!("{:.0}", total as f64 / seconds);
    Ok(())
}

fn run(path: &str, sql: &str, params: &[Value], deadline: Instant) -> Result<u64, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "mmap_size", 1_073_741_824_i64)?;
    conn.pragma_update(None, "cache_size", -16_384_i64)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    let mut statement = conn.prepare(sql)?;
    let mut count = 0;
    while Instant::now() < deadline {
        let mut rows = statement.query(params_from_iter(params))?;
        while rows.next()?.is_some() {}
        count += 1;
    }
    Ok(count)
}
