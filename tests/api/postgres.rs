//! A throwaway PostgreSQL cluster for the test binary, started from the system's binaries on
//! first use and stopped when the test process exits.
//!
//! `ROSTER_TEST_DATABASE_URL` points the tests at an existing server instead (each test creates
//! its own database there). Without either, PostgreSQL tests are skipped with a loud message,
//! unless `ROSTER_REQUIRE_POSTGRES=1`, which turns the skip into a failure (CI sets it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

/// The URL of a fresh, empty database, or why there is none.
pub async fn fresh_database() -> Result<String, String> {
    let server = SERVER.get_or_init(start_server).clone()?;
    let name = format!(
        "roster_test_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .map_err(|e| format!("cannot reach the test PostgreSQL at {server}: {e}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("cannot create a test database: {e}"))?;
    Ok(format!("{server}/{name}"))
}

pub fn required() -> bool {
    std::env::var("ROSTER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The server URL without a database name.
fn start_server() -> Result<String, String> {
    if let Ok(url) = std::env::var("ROSTER_TEST_DATABASE_URL") {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let bin = find_binaries().ok_or_else(|| {
        "no PostgreSQL binaries found (looked in $ROSTER_PG_BIN, /usr/lib/postgresql/*/bin and \
         pg_config --bindir); install postgresql or set ROSTER_TEST_DATABASE_URL"
            .to_owned()
    })?;
    let root = std::env::temp_dir().join(format!("roster-test-pg-{}", std::process::id()));
    remove_stale_clusters();
    let data = root.join("data");
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let owner = cluster_owner()?;
    if let Some((uid, gid)) = owner {
        chown(&root, uid, gid)?;
    }
    let status = command(&bin.join("initdb"), owner)
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    let port = free_port()?;
    // The postmaster is started from a thread that lives as long as the process, because the
    // parent-death signal fires when the spawning *thread* ends.
    let (sender, receiver) = std::sync::mpsc::channel();
    let postgres = bin.join("postgres");
    let socket_dir = root.clone();
    std::thread::spawn(move || {
        let mut cmd = command(&postgres, owner);
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&socket_dir)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let spawned = cmd.spawn().map(|child| child.id());
        let _ = sender.send(spawned.map_err(|e| format!("cannot start postgres: {e}")));
        loop {
            std::thread::park();
        }
    });
    receiver
        .recv()
        .map_err(|e| format!("postgres starter thread died: {e}"))??;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("postgres did not start listening within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Accepting TCP is not yet accepting sessions; pg_isready tells.
    while !Command::new(bin.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        if Instant::now() > deadline {
            return Err("postgres did not become ready within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "test PostgreSQL cluster started on 127.0.0.1:{port} in {}",
        root.display()
    );
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}

/// The directory of the PostgreSQL server binaries (`initdb`, `postgres`, `pg_dump`).
pub fn find_binaries() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ROSTER_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(newest) = versions.pop() {
        return Some(newest);
    }
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    dir.join("initdb").exists().then_some(dir)
}

/// initdb refuses to run as root: as root, the cluster belongs to the `postgres` user.
fn cluster_owner() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let output = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    let uid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse::<u32>();
    let output = Command::new("id")
        .args(["-g", "postgres"])
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    let gid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse::<u32>();
    match (uid, gid) {
        (Ok(uid), Ok(gid)) => Ok(Some((uid, gid))),
        _ => Err("running as root, and there is no `postgres` user to own the test cluster".into()),
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("cannot chown {}: {e}", path.display()))
}

fn command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// SIGQUIT (immediate shutdown) to the postmaster when the test process goes away. Set after
/// the uid change, which would otherwise clear it.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Clusters left by earlier test runs whose process is gone.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("roster-test-pg-"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
