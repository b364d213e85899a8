//! A private, throw-away PostgreSQL cluster for tests that must configure or
//! restart the server itself (TLS, a restart under load): `initdb` into a
//! temp dir, a free port on 127.0.0.1, trust auth, optionally `ssl=on` with
//! a given certificate. The shared server on 5432 is never touched.
//!
//! The binaries come from `/usr/lib/postgresql/<version>/bin` (the newest)
//! or `HEARTH_PG_BIN`. When they are missing the test is skipped with a
//! message — except under `CI=true`, where that is a failure. As root, the
//! cluster runs as the `postgres` user (initdb refuses root).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Server TLS material, PEM.
pub struct Ssl<'a> {
    pub cert: &'a str,
    pub key: &'a str,
}

pub struct PrivateCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// `runuser -u postgres --` when running as root.
    run_as: Option<String>,
    _dir: tempfile::TempDir,
}

fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HEARTH_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("id postgres");
        assert!(out.status.success(), "running as root needs a `postgres` user to run the private cluster");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

impl PrivateCluster {
    /// Starts a cluster, or returns `None` (skip) when PostgreSQL's server
    /// binaries are not installed and `CI` is not `true`.
    pub fn start(ssl: Option<Ssl<'_>>) -> Option<PrivateCluster> {
        let Some(bin) = pg_bin() else {
            let message = "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin \
                           (set HEARTH_PG_BIN)";
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{message}; with CI=true this is a failure, not a skip");
            }
            eprintln!("skipped: {message}");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("hearth-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let run_as = is_root().then(|| "postgres".to_owned());
        if run_as.is_some() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = PrivateCluster { port, bin, data: data.clone(), log, run_as, _dir: dir };
        cluster.run("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 60\nshared_buffers = 16MB\n",
            cluster._dir.path().display()
        );
        if let Some(ssl) = ssl {
            let cert = cluster._dir.path().join("server.crt");
            let key = cluster._dir.path().join("server.key");
            cluster.write_private(&cert, ssl.cert);
            cluster.write_private(&key, ssl.key);
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            ));
            // Only TLS connections get in, so a test cannot pass in plain text.
            cluster.write_private(
                &data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            );
        }
        let mut file = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
        cluster.pg_ctl("start");
        Some(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` plus `query` (`?…` or empty).
    pub fn url(&self, query: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres{query}", self.port)
    }

    /// `pg_ctl stop -m fast`: connections are closed, the server is down.
    pub fn stop(&self) {
        self.pg_ctl_args(&["stop", "-m", "fast"]);
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once, with
    /// no checkpoint and no flush of the WAL buffers, like a crash; the
    /// next start runs crash recovery.
    pub fn crash(&self) {
        self.pg_ctl_args(&["stop", "-m", "immediate"]);
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pg_ctl(&self, action: &str) {
        self.pg_ctl_args(&[action]);
    }

    fn pg_ctl_args(&self, args: &[&str]) {
        let data = self.data.to_str().unwrap().to_owned();
        let log = self.log.to_str().unwrap().to_owned();
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "60"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Writes a file only its owner (the cluster's user) can read.
    fn write_private(&self, path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.run_as.is_some() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}\n{}\nlog:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap().to_owned();
        let outcome = self.command("pg_ctl").args(["-D", &data, "stop", "-m", "immediate", "-w", "-t", "30"]).output();
        if !matches!(&outcome, Ok(output) if output.status.success()) {
            // Already stopped (a test stopped it) is fine; anything else is worth a line.
            eprintln!("note: pg_ctl stop of the private cluster: {outcome:?}");
        }
    }
}
