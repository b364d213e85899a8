//! Running the real `hearth` binary: a server on `127.0.0.1:0` in a temp
//! dir of its own (SQLite by default, or a fresh Postgres database), and
//! CLI invocations against it. Every wait is bounded, so a hung process
//! fails the test instead of hanging it.
//!
//! Nothing a test starts outlives it, pass or fail. Every process started
//! through [`hearth_command`] carries its test's directory in
//! `HEARTH_TEST_DIR`, and so does everything it starts in turn (the
//! process provisioner's agents, the e2e harness's agent and `hearth up`'s
//! inherit their parent's environment). A server is stopped when its handle
//! is dropped (SIGTERM, so the provisioner stops its agents; SIGKILL after a
//! few seconds), and when the test's [`TestDir`] is dropped, after every
//! handle in it, whatever still carries its directory is killed: the
//! runtime a `kill -9`ed server left for adoption, the agent of a CLI
//! command killed on timeout. (A test process killed outright runs no
//! destructor; nextest then kills its process group, which all of these
//! are in.)
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod pg_cluster;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use hearth_store_pg::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");
/// The admin token every test server uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// How long a server may take to print its address (Postgres migrations
/// included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one CLI command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The `HEARTH_*` variables a developer's shell may hold; none may leak into
/// a test.
const HEARTH_VARIABLES: &[&str] = &[
    "HEARTH_SERVER",
    "HEARTH_TOKEN",
    "HEARTH_DATABASE_URL",
    "HEARTH_DATA_DIR",
    "HEARTH_LISTEN",
    "HEARTH_ADMIN_TOKEN",
    "HEARTH_PROVISIONER",
    "HEARTH_AGENT_HEARTBEAT_INTERVAL",
    "HEARTH_SWEEP_INTERVAL",
    "HEARTH_LIVENESS_TTL",
    "HEARTH_PROVISION_TIMEOUT",
    "HEARTH_AGENT_PROGRAM",
    "HEARTH_RUNTIME_STOP_GRACE",
    "HEARTH_MAX_STREAMS_PER_TOKEN",
    "HEARTH_RATE_LIMIT_PER_TOKEN",
    "HEARTH_REQUEST_TIMEOUT",
    "HEARTH_RATE_LIMIT_PER_WORKSPACE",
    "HEARTH_HEADER_TIMEOUT",
    "HEARTH_TLS_CERT",
    "HEARTH_TLS_KEY",
    "HEARTH_TRUSTED_PROXIES",
    "HEARTH_CA_CERT",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The variable that ties a process to the test directory it was started
/// in (see the module's docs); Hearth itself never reads it.
const TEST_DIR_VARIABLE: &str = "HEARTH_TEST_DIR";

/// A `Command` for the hearth binary with a clean `HEARTH_*` environment,
/// run in `dir` (a [`TestDir`], or a directory inside one) and tied to it:
/// it and everything it starts end when that `TestDir` is dropped, at the
/// latest.
pub fn hearth_command(dir: &Path) -> Command {
    let mut command = Command::new(HEARTH);
    for variable in HEARTH_VARIABLES {
        command.env_remove(variable);
    }
    command.env(TEST_DIR_VARIABLE, dir).current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// A test's temporary directory (`/tmp/hearth-test-*`), removed when dropped,
/// and the scope of the processes the test starts in it: dropping it first
/// kills every process still running whose `HEARTH_TEST_DIR` is in it
/// ([`reap`]).
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> TestDir {
        TestDir(tempfile::Builder::new().prefix("hearth-test-").tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        reap(self.path());
    }
}

/// Kills (SIGKILL) every process of this user still running with a
/// `HEARTH_TEST_DIR` at or under `dir`, and waits until they are gone
/// (bounded); returns their pids. Linux: reads `/proc/<pid>/environ`.
pub fn reap(dir: &Path) -> Vec<u32> {
    let pids = processes_started_in(dir);
    if pids.is_empty() {
        return pids;
    }
    let listed: Vec<String> = pids.iter().map(u32::to_string).collect();
    // Some may end by themselves meanwhile; `kill` then fails for those.
    let _ended_already_is_fine = std::process::Command::new("kill").arg("-KILL").args(&listed).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|pid| is_running(*pid)) {
        if std::time::Instant::now() >= deadline {
            let left: Vec<u32> = pids.iter().copied().filter(|pid| is_running(*pid)).collect();
            eprintln!("warning: processes of test dir {} still run after SIGKILL: {left:?}", dir.display());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pids
}

/// Pids of the running processes (not zombies) whose `HEARTH_TEST_DIR` is
/// `dir` or a directory inside it, this process excluded.
pub fn processes_started_in(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        // Another user's process, or one that just ended: not ours to see.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let started_here = environ.split(|byte| *byte == 0).any(|variable| {
            let Some(value) = variable.strip_prefix(format!("{TEST_DIR_VARIABLE}=").as_bytes()) else { return false };
            Path::new(std::ffi::OsStr::from_bytes(value)).starts_with(dir)
        });
        if started_here && pid != me && is_running(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// True while `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold ')'.
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Ends a child the way a test's handle does when dropped: SIGTERM (a
/// server then stops the runtimes it started), then SIGKILL if it has not
/// exited within 5 s.
fn terminate(child: &mut Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    if let Some(pid) = child.id() {
        let _exited_meanwhile_is_fine = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        for _ in 0..100 {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _exited_meanwhile_is_fine = child.start_kill();
}

/// A running `hearth serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// The first line the server printed on stdout.
    pub first_line: String,
    pub data_dir: PathBuf,
    /// The test's temp dir (the server's data dir is inside it); dropped
    /// after the server is stopped, killing what is left ([`TestDir`]).
    pub dir: TestDir,
    /// Kept open: the server may write more to stdout.
    _stdout: BufReader<ChildStdout>,
    log: PathBuf,
    /// Declared last so the server is killed before its database goes.
    _database: Option<TestDatabase>,
}

impl Server {
    /// `hearth serve --listen 127.0.0.1:0 ARGS…` with `ENV`, on `engine`.
    pub async fn start(engine: Engine, args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = TestDir::new();
        let data_dir = dir.path().join("data");
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(hearth_store_pg::testing::create_database().await),
        };
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = hearth_command(dir.path());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(args)
            .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
            // The server sets the agents' pace: fast, for tests.
            .env("HEARTH_AGENT_HEARTBEAT_INTERVAL", "0.5")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        if let Some(database) = &database {
            command.arg("--database-url").arg(&database.url);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut first_line)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            let _ = child.start_kill();
            panic!("the server printed no address within {START_TIMEOUT:?}; its log:\n{}", read_log(&log));
        }
        let first_line = first_line.trim_end_matches('\n').to_owned();
        let url = first_line
            .strip_prefix("hearth listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
            .to_owned();
        Server { child, url, first_line, data_dir, dir, _stdout: stdout, log, _database: database }
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Runs `hearth ARGS…` against this server with the admin token.
    pub async fn hearth(&self, args: &[&str]) -> Run {
        let mut command = hearth_command(self.dir.path());
        command.args(args).env("HEARTH_SERVER", &self.url).env("HEARTH_TOKEN", ADMIN_TOKEN);
        // What the command keeps in temp dirs (a failed e2e keeps its agent's
        // files) goes away with the test's.
        command.env("TMPDIR", self.dir.path());
        Run::of(command).await
    }

    /// Sends SIGTERM and waits for the exit (bounded).
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the server is still running");
        let status = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("the server did not exit within 20s of SIGTERM; its log:\n{}", self.log()),
        }
    }
}

impl Drop for Server {
    /// SIGTERM first, so a process provisioner stops the agents it started;
    /// SIGKILL if that is not enough within a few seconds. Whatever is left
    /// (a SIGKILL orphans the agents) goes with `dir`, dropped next.
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| format!("(cannot read {}: {err})", path.display()))
}

/// A finished CLI invocation.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub async fn of(mut command: Command) -> Run {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        let output: Output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(output) => output.unwrap(),
            Err(_) => panic!("a hearth command did not finish within {COMMAND_TIMEOUT:?}"),
        };
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// stdout as exactly one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}):\n{}", self.stdout))
    }

    /// The stdout line that starts with `prefix`.
    pub fn line(&self, prefix: &str) -> &str {
        self.stdout.lines().find(|line| line.starts_with(prefix)).unwrap_or_else(|| {
            panic!("no line starting with {prefix:?}; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A `hearth serve` of [`serve_on`]: the child, stopped like [`Server`]'s
/// when dropped (SIGTERM, then SIGKILL); what it leaves goes with its
/// [`TestDir`].
pub struct Serving(Child);

impl std::ops::Deref for Serving {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Serving {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

/// `hearth serve ARGS… --listen 127.0.0.1:PORT --data-dir DIR/data`, for tests
/// that stop and start a server on the same port and data (crash and
/// restart); returns once it prints its address. `dir` is the test's
/// [`TestDir`] (or inside it).
pub async fn serve_on(dir: &Path, port: u16, args: &[&str]) -> Serving {
    serve_on_with(dir, port, args, &[]).await
}

/// [`serve_on`] with `env` set for the server (e.g. `DOCKER_HOST`).
pub async fn serve_on_with(dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Serving {
    let mut command = hearth_command(dir);
    command
        .envs(env.iter().copied())
        .arg("serve")
        .args(args)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HEARTH_AGENT_HEARTBEAT_INTERVAL", "0.5")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await.unwrap().unwrap();
    assert!(line.starts_with("hearth listening on "), "{line}");
    Serving(child)
}

/// Reads `hearth up`'s narration from `child`'s stdout until it says
/// "Ctrl-C stops it" (its walkthrough is over) or `patience` runs out:
/// what it said, and whether it got there.
pub async fn up_walkthrough(child: &mut Child, patience: std::time::Duration) -> (String, bool) {
    let mut lines = BufReader::new(child.stdout.take().expect("up's stdout is piped")).lines();
    let mut said = Vec::new();
    let read_until_ctrl_c = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("Ctrl-C stops it");
            said.push(line);
            if done {
                return;
            }
        }
    };
    let finished = tokio::time::timeout(patience, read_until_ctrl_c).await.is_ok();
    (said.join("\n"), finished)
}
