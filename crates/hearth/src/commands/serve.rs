//! `hearth serve` and `hearth migrate`: flags and `HEARTH_*` variables into
//! `hearth_server::Settings`, telemetry, then the server library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use hearth_server::{ProvisionerKind, Settings};
use secrecy::SecretString;

use crate::cli::{interval, HeartbeatAckArg};
use crate::output;
use crate::telemetry;

/// Where the database lives; shared by `serve` and `migrate`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: postgres://… or sqlite:… [default: sqlite://<data-dir>/hearth.db]
    #[arg(long, env = "HEARTH_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Directory for the SQLite database, the generated admin token and key,
    /// and workspace runtimes.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "./hearth-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// How long a request waits for a database connection before a 503.
    #[arg(long, env = "HEARTH_DATABASE_TIMEOUT", value_name = "SECS", value_parser = seconds,
          default_value_t = defaults().database_timeout.as_secs())]
    database_timeout: u64,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "HEARTH_LISTEN", default_value_t = defaults().listen, value_name = "ADDR")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Admin token [default: generated into <data-dir>/admin-token]
    #[arg(long, env = "HEARTH_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN", allow_hyphen_values = true)]
    admin_token: Option<String>,
    /// How workspace runtimes are started.
    #[arg(long, env = "HEARTH_PROVISIONER", value_enum, default_value_t = Provisioner::None)]
    provisioner: Provisioner,
    /// The fleet's heartbeat pace: each heartbeat answer tells the runtime
    /// when to send the next (this, jittered ±10 %, longer past
    /// --max-heartbeat-rate); fractions allowed, such as 0.5. The same
    /// variable `hearth agent` reads.
    #[arg(long, alias = "agent-heartbeat-interval", env = "HEARTH_AGENT_HEARTBEAT_INTERVAL", value_name = "SECS",
          value_parser = interval, default_value = DEFAULT_AGENT_HEARTBEAT)]
    heartbeat_interval: Duration,
    /// Heartbeats per second the whole fleet may send; a larger fleet is
    /// told to heartbeat more slowly (0: no budget).
    #[arg(long, env = "HEARTH_MAX_HEARTBEAT_RATE", value_name = "N", default_value_t = defaults().max_heartbeat_rate)]
    max_heartbeat_rate: u32,
    /// When a plain "still alive" heartbeat is answered: after its batch
    /// commits (committed), or once its write is queued while the writer
    /// keeps up (queued: more heartbeats/s; a crash of Hearth loses the
    /// last milliseconds' queued heartbeats, and a change made through
    /// another replica reaches the runtime one heartbeat later).
    #[arg(long, env = "HEARTH_HEARTBEAT_ACK", value_enum, default_value_t = HeartbeatAckArg::Committed)]
    heartbeat_ack: HeartbeatAckArg,
    /// The `hearth` executable the process provisioner runs as `hearth agent` [default: this executable]
    #[arg(long, env = "HEARTH_AGENT_PROGRAM", value_name = "PATH")]
    agent_program: Option<PathBuf>,
    /// Seconds a runtime stopped by the process provisioner gets after
    /// SIGTERM to finish its current step, before SIGKILL.
    #[arg(long, env = "HEARTH_RUNTIME_STOP_GRACE", value_name = "SECS", value_parser = interval,
          default_value = DEFAULT_RUNTIME_STOP_GRACE)]
    runtime_stop_grace: Duration,
    /// The server URL Docker containers reach this server at [default:
    /// http(s)://127.0.0.1:<port of --listen>; containers run on the host network]
    #[arg(long, env = "HEARTH_CONTAINER_SERVER_URL", value_name = "URL")]
    container_server_url: Option<String>,
    /// The image of workspaces whose template's runtime is NAME (repeatable;
    /// a template's own `image:` wins)
    #[arg(long = "runtime-image", value_name = "NAME=IMAGE", value_parser = runtime_image)]
    runtime_images: Vec<(String, String)>,
    /// The image of workspaces whose template names none and whose runtime
    /// has none [default: none, such a workspace does not run]
    #[arg(long, env = "HEARTH_DEFAULT_IMAGE", value_name = "IMAGE")]
    default_image: Option<String>,
    /// Names this Hearth's containers apart from another Hearth's on the
    /// same daemon [default: kept in <data-dir>/instance-id]
    #[arg(long, env = "HEARTH_DOCKER_INSTANCE", value_name = "ID")]
    docker_instance: Option<String>,
    /// A workspace with no heartbeat for this long goes offline.
    #[arg(long, env = "HEARTH_LIVENESS_TTL", value_name = "SECS", value_parser = seconds,
          default_value_t = defaults().liveness_ttl.as_secs())]
    liveness_ttl: u64,
    /// A workspace still provisioning after this long has failed.
    #[arg(long, env = "HEARTH_PROVISION_TIMEOUT", value_name = "SECS", value_parser = seconds,
          default_value_t = defaults().provision_timeout.as_secs())]
    provision_timeout: u64,
    /// How often the liveness and provision-timeout sweepers run.
    #[arg(long, env = "HEARTH_SWEEP_INTERVAL", value_name = "SECS", value_parser = seconds,
          default_value_t = defaults().sweep_interval.as_secs())]
    sweep_interval: u64,
    /// A mass silence is more than this share of the live fleet silent at
    /// once (and more than --mass-silence-min): marked offline at
    /// --mass-silence-rate, not all at once. 1 turns the guard off.
    #[arg(long, env = "HEARTH_MASS_SILENCE_SHARE", value_name = "SHARE", value_parser = share,
          default_value_t = defaults().mass_silence.share)]
    mass_silence_share: f64,
    /// Fewer silent workspaces than this are never a mass silence.
    #[arg(long, env = "HEARTH_MASS_SILENCE_MIN", value_name = "N",
          default_value_t = defaults().mass_silence.min)]
    mass_silence_min: u64,
    /// Workspaces per second (per replica) a mass silence takes offline.
    #[arg(long, env = "HEARTH_MASS_SILENCE_RATE", value_name = "PER_SEC", value_parser = rate,
          default_value_t = defaults().mass_silence.rate)]
    mass_silence_rate: f64,
    /// Hibernate online workspaces idle this long [default: never]
    #[arg(long, env = "HEARTH_HIBERNATE_AFTER", value_name = "SECS", value_parser = seconds)]
    hibernate_after: Option<u64>,
    /// Accept agent URLs in private (RFC 1918 / ULA) ranges.
    #[arg(long, env = "HEARTH_ALLOW_PRIVATE_AGENT_URLS", value_parser = BoolishValueParser::new())]
    allow_private_agent_urls: bool,
    /// Refuse bootstrap registration: workspaces need an issued token (the
    /// same as --bootstrap-window 0).
    #[arg(long, env = "HEARTH_REQUIRE_ISSUED_TOKENS", value_parser = BoolishValueParser::new())]
    require_issued_tokens: bool,
    /// Seconds after its creation during which a workspace that never had a
    /// token may register without one and be given its first (the
    /// bootstrap, once, while provisioning); 0 turns bootstrap off.
    #[arg(long, env = "HEARTH_BOOTSTRAP_WINDOW", value_name = "SECS", value_parser = whole_seconds,
          default_value_t = defaults().bootstrap_window.as_secs())]
    bootstrap_window: u64,
    /// Key for secrets at rest: 32 bytes, base64 or hex [default: generated into <data-dir>/secret-key]
    #[arg(long, env = "HEARTH_SECRET_KEY", hide_env_values = true, value_name = "KEY")]
    secret_key: Option<String>,
    /// Seconds a request may take to arrive and be answered (event streams
    /// then run on); a slower one is a 408.
    #[arg(long, env = "HEARTH_REQUEST_TIMEOUT", value_name = "SECS", value_parser = interval,
          default_value = DEFAULT_REQUEST_TIMEOUT)]
    request_timeout: Duration,
    /// Requests per second one org or workspace token may make (bursts of
    /// twice that; the admin token is not limited); 0 turns the limit off.
    #[arg(long, env = "HEARTH_RATE_LIMIT_PER_TOKEN", value_name = "N",
          default_value_t = defaults().rate_limit_per_token)]
    rate_limit_per_token: u32,
    /// Requests per second one workspace may make, all its tokens together
    /// (bursts of twice that); 0 turns the limit off.
    #[arg(long, env = "HEARTH_RATE_LIMIT_PER_WORKSPACE", value_name = "N",
          default_value_t = defaults().rate_limit_per_workspace)]
    rate_limit_per_workspace: u32,
    /// Seconds a client may take to send a request's head (and finish a TLS
    /// handshake); a slower one is disconnected.
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT", value_name = "SECS", value_parser = interval,
          default_value = DEFAULT_HEADER_TIMEOUT)]
    header_timeout: Duration,
    /// Serve HTTPS with this certificate chain (PEM; needs --tls-key)
    /// [default: plain HTTP, for a TLS-terminating proxy in front]
    #[arg(long, env = "HEARTH_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HEARTH_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Proxies (addresses or CIDR ranges, comma-separated) whose
    /// X-Forwarded-For and X-Forwarded-Proto are believed [default: none;
    /// the headers are ignored]
    #[arg(long, env = "HEARTH_TRUSTED_PROXIES", value_name = "CIDR,...", value_delimiter = ',')]
    trusted_proxies: Vec<hearth_server::forwarded::Cidr>,
    /// Event streams (SSE) one token may hold open at once; one more is a 429.
    #[arg(long, env = "HEARTH_MAX_STREAMS_PER_TOKEN", value_name = "N",
          default_value_t = defaults().max_streams_per_token)]
    max_streams_per_token: usize,
    /// Tokens, and workspaces on the heartbeat fast path, kept in memory
    /// (per cache; ~100 bytes each, allocated as used). Set it above the
    /// fleet's size: a larger fleet takes the slow path for some heartbeats
    /// of every round.
    #[arg(long, env = "HEARTH_CACHE_ENTRIES", value_name = "N", default_value_t = defaults().cache_entries)]
    cache_entries: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HEARTH_MAX_BODY_BYTES", value_name = "BYTES", value_parser = bytes,
          default_value_t = defaults().max_body_bytes)]
    max_body_bytes: usize,
    /// Largest template or plugin upload accepted (also the plugin size cap), in bytes.
    #[arg(long, env = "HEARTH_MAX_UPLOAD_BYTES", value_name = "BYTES", value_parser = bytes,
          default_value_t = defaults().max_upload_bytes)]
    max_upload_bytes: usize,
    /// Events older than this are compacted away (each workspace's latest
    /// status event is kept): seconds, or a number with `s`, `m`, `h` or
    /// `d` (`7d`, `12h`).
    #[arg(long, env = "HEARTH_EVENT_RETENTION", value_name = "AGE", value_parser = age,
          default_value = DEFAULT_EVENT_RETENTION)]
    event_retention: Duration,
    /// A workspace's events beyond its newest N are compacted away (its
    /// latest status event is kept).
    #[arg(long, env = "HEARTH_EVENT_RETENTION_PER_WORKSPACE", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..),
          default_value_t = defaults().event_retention_per_workspace)]
    event_retention_per_workspace: u32,
    /// Wait long polls (GET /workspaces/{id}/wait) one token may hold open
    /// at once; one more is a 429.
    #[arg(long, env = "HEARTH_MAX_WAITS_PER_TOKEN", value_name = "N", value_parser = count,
          default_value_t = defaults().max_waits_per_token)]
    max_waits_per_token: usize,
    /// Event streams and wait long polls the whole server holds open at
    /// once, all tokens together; one more is a 503 with Retry-After.
    #[arg(long, env = "HEARTH_MAX_LONG_POLLS", value_name = "N", value_parser = count,
          default_value_t = defaults().max_long_polls)]
    max_long_polls: usize,
    /// Live org tokens one org may hold; one more is a 409 limit_reached.
    #[arg(long, env = "HEARTH_MAX_ORG_TOKENS", value_name = "N", value_parser = count,
          default_value_t = defaults().max_org_tokens)]
    max_org_tokens: usize,
    /// Large template and plugin uploads (over 1 MiB) read at once; one
    /// more is a 429 with Retry-After, before its body is read.
    #[arg(long, env = "HEARTH_MAX_CONCURRENT_UPLOADS", value_name = "N", value_parser = count,
          default_value_t = defaults().max_concurrent_uploads)]
    max_concurrent_uploads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provisioner {
    /// Runtimes are started elsewhere and register themselves.
    None,
    /// Hearth starts `hearth agent` for each workspace.
    Process,
    /// Hearth runs each workspace as a Docker container running `hearth agent`.
    Docker,
}

/// `Settings::default().heartbeat_interval`, as text for clap (a test
/// keeps the two equal).
const DEFAULT_AGENT_HEARTBEAT: &str = "30";
/// `Settings::default().runtime_stop_grace`, likewise.
const DEFAULT_RUNTIME_STOP_GRACE: &str = "10";
/// `Settings::default().request_timeout`, likewise.
const DEFAULT_REQUEST_TIMEOUT: &str = "60";
/// `Settings::default().header_timeout`, likewise.
const DEFAULT_HEADER_TIMEOUT: &str = "10";

/// `Settings::default().event_retention`, likewise.
const DEFAULT_EVENT_RETENTION: &str = "7d";

/// The server's defaults, so each default is written down once.
fn defaults() -> Settings {
    Settings::default()
}

/// A whole number of seconds, at least 1.
fn seconds(text: &str) -> Result<u64, String> {
    positive(text).map_err(|_| "expected a whole number of seconds, at least 1".to_owned())
}

/// A share of the fleet: a number from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("expected a share from 0 to 1, such as 0.5".to_owned()),
    }
}

/// A rate per second: a number above 0.
fn rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err("expected a number of workspaces per second above 0, such as 10".to_owned()),
    }
}

/// A duration of at least one second: whole seconds, or a whole number
/// with a unit `s`, `m`, `h` or `d`.
fn age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&text[..at], unit),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d (e.g. 7d)")),
    };
    let count: u64 =
        positive(number).map_err(|_| "expected a whole number of seconds, or e.g. 90s, 15m, 12h, 7d".to_owned())?;
    count.checked_mul(scale).map(Duration::from_secs).ok_or_else(|| "that duration is too long".to_owned())
}

/// A whole number of seconds, 0 allowed.
fn whole_seconds(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| "expected a whole number of seconds (0 or more)".to_owned())
}

/// A count, at least 1 (a cap of 0 would refuse everything).
fn count(text: &str) -> Result<usize, String> {
    positive(text).map_err(|_| "expected a whole number, at least 1".to_owned())
}

/// A byte count, at least 1.
fn bytes(text: &str) -> Result<usize, String> {
    positive(text).map_err(|_| "expected a whole number of bytes, at least 1".to_owned())
}

/// `NAME=IMAGE` of `--runtime-image`.
fn runtime_image(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, image)) if !name.trim().is_empty() && !image.trim().is_empty() => {
            Ok((name.trim().to_owned(), image.trim().to_owned()))
        }
        _ => Err(format!("expected NAME=IMAGE (such as claude-code=acme/claude-agent:1), got {text:?}")),
    }
}

fn positive<T: std::str::FromStr + PartialOrd + From<u8>>(text: &str) -> Result<T, ()> {
    text.trim().parse::<T>().ok().filter(|value| *value >= T::from(1)).ok_or(())
}

impl From<Provisioner> for ProvisionerKind {
    fn from(provisioner: Provisioner) -> Self {
        match provisioner {
            Provisioner::None => ProvisionerKind::None,
            Provisioner::Process => ProvisionerKind::Process,
            Provisioner::Docker => ProvisionerKind::Docker,
        }
    }
}

impl ServeArgs {
    fn into_settings(self) -> Settings {
        // Every field is named, so a new setting cannot be forgotten here.
        Settings {
            listen: self.listen,
            tls: self.tls_cert.zip(self.tls_key).map(|(cert, key)| hearth_server::listener::TlsFiles { cert, key }),
            trusted_proxies: hearth_server::forwarded::TrustedProxies(self.trusted_proxies),
            header_timeout: self.header_timeout,
            database_url: self.database.database_url.map(SecretString::from),
            data_dir: self.database.data_dir,
            admin_token: self.admin_token.map(SecretString::from),
            secret_key: self.secret_key.map(SecretString::from),
            provisioner: self.provisioner.into(),
            heartbeat_interval: self.heartbeat_interval,
            max_heartbeat_rate: self.max_heartbeat_rate,
            heartbeat_ack: self.heartbeat_ack.into(),
            agent_program: self.agent_program,
            runtime_stop_grace: self.runtime_stop_grace,
            docker: hearth_server::DockerSettings {
                server_url: self.container_server_url,
                runtime_images: self.runtime_images.into_iter().collect(),
                default_image: self.default_image,
                instance: self.docker_instance,
            },
            liveness_ttl: Duration::from_secs(self.liveness_ttl),
            provision_timeout: Duration::from_secs(self.provision_timeout),
            sweep_interval: Duration::from_secs(self.sweep_interval),
            mass_silence: hearth_server::MassSilenceGuard {
                share: self.mass_silence_share,
                min: self.mass_silence_min,
                rate: self.mass_silence_rate,
            },
            hibernate_after: self.hibernate_after.map(Duration::from_secs),
            allow_private_agent_urls: self.allow_private_agent_urls,
            require_issued_tokens: self.require_issued_tokens,
            bootstrap_window: Duration::from_secs(self.bootstrap_window),
            request_timeout: self.request_timeout,
            rate_limit_per_token: self.rate_limit_per_token,
            rate_limit_per_workspace: self.rate_limit_per_workspace,
            max_streams_per_token: self.max_streams_per_token,
            cache_entries: self.cache_entries,
            max_body_bytes: self.max_body_bytes,
            max_upload_bytes: self.max_upload_bytes,
            database_timeout: Duration::from_secs(self.database.database_timeout),
            event_retention: self.event_retention,
            event_retention_per_workspace: self.event_retention_per_workspace,
            max_waits_per_token: self.max_waits_per_token,
            max_long_polls: self.max_long_polls,
            max_org_tokens: self.max_org_tokens,
            max_concurrent_uploads: self.max_concurrent_uploads,
        }
    }
}

impl MigrateArgs {
    fn into_settings(self) -> Settings {
        Settings {
            database_url: self.database.database_url.map(SecretString::from),
            data_dir: self.database.data_dir,
            database_timeout: Duration::from_secs(self.database.database_timeout),
            ..defaults()
        }
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init()?;
    let serving = hearth_server::serve(args.into_settings()).await?;
    // Scripts and tests wait for this line (CLI.md): once the socket is
    // bound and migrations have run.
    output::print(&format!("hearth listening on {}", serving.url()))?;
    serving.run().await
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    telemetry::init()?;
    let migrated = hearth_server::migrate(args.into_settings()).await?;
    output::print(&format!(
        "database migrated ({}, schema version {})",
        migrated.engine.as_str(),
        migrated.schema_version
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_settings(args: &[&str]) -> Settings {
        let cli = Cli::try_parse_from([&["hearth", "serve"], args].concat()).unwrap_or_else(|err| panic!("{err}"));
        let Command::Serve(serve) = cli.command else { panic!("not serve") };
        let serve = *serve;
        serve.into_settings()
    }

    #[test]
    fn every_serve_flag_reaches_the_settings() {
        let settings = serve_settings(&[
            "--listen=127.0.0.1:0",
            "--database-url=sqlite::memory:",
            "--data-dir=/tmp/h",
            "--admin-token=adm",
            "--provisioner=process",
            "--agent-heartbeat-interval=2",
            "--agent-program=/bin/hearth",
            "--liveness-ttl=7",
            "--provision-timeout=8",
            "--sweep-interval=9",
            "--hibernate-after=10",
            "--allow-private-agent-urls",
            "--require-issued-tokens",
            "--bootstrap-window=0",
            "--secret-key=k",
            "--max-body-bytes=2048",
            "--max-upload-bytes=4096",
            "--database-timeout=3",
            "--rate-limit-per-workspace=5",
            "--header-timeout=4",
            "--tls-cert=/c.pem",
            "--tls-key=/k.pem",
            "--trusted-proxies=10.0.0.0/8,192.168.1.7",
            "--event-retention=36h",
            "--event-retention-per-workspace=50",
            "--max-waits-per-token=11",
            "--max-long-polls=12",
            "--max-org-tokens=13",
            "--max-concurrent-uploads=14",
            "--mass-silence-share=0.25",
            "--mass-silence-min=15",
            "--mass-silence-rate=16.5",
        ]);
        assert_eq!(settings.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(settings.database_url.unwrap().expose_secret(), "sqlite::memory:");
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/h"));
        assert_eq!(settings.admin_token.unwrap().expose_secret(), "adm");
        assert_eq!(settings.provisioner, ProvisionerKind::Process);
        assert_eq!(settings.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(settings.agent_program, Some(PathBuf::from("/bin/hearth")));
        assert_eq!(settings.liveness_ttl, Duration::from_secs(7));
        assert_eq!(
            settings.mass_silence,
            hearth_server::MassSilenceGuard { share: 0.25, min: 15, rate: 16.5 },
            "the mass-silence guard"
        );
        assert_eq!(settings.provision_timeout, Duration::from_secs(8));
        assert_eq!(settings.sweep_interval, Duration::from_secs(9));
        assert_eq!(settings.hibernate_after, Some(Duration::from_secs(10)));
        assert!(settings.allow_private_agent_urls);
        assert!(settings.require_issued_tokens);
        assert_eq!(settings.bootstrap_window, Duration::ZERO);
        assert_eq!(settings.secret_key.unwrap().expose_secret(), "k");
        assert_eq!(settings.max_body_bytes, 2048);
        assert_eq!(settings.max_upload_bytes, 4096);
        assert_eq!(settings.database_timeout, Duration::from_secs(3));
        assert_eq!(settings.rate_limit_per_workspace, 5);
        assert_eq!(settings.header_timeout, Duration::from_secs(4));
        let tls = settings.tls.unwrap();
        assert_eq!((tls.cert, tls.key), (PathBuf::from("/c.pem"), PathBuf::from("/k.pem")));
        assert_eq!(settings.trusted_proxies.0.len(), 2);
        assert!(settings.trusted_proxies.trusts("192.168.1.7".parse().unwrap()));
        assert_eq!(settings.max_waits_per_token, 11);
        assert_eq!(settings.max_long_polls, 12);
        assert_eq!(settings.max_org_tokens, 13);
        assert_eq!(settings.max_concurrent_uploads, 14);
        assert_eq!(settings.event_retention, Duration::from_secs(36 * 3600));
        assert_eq!(settings.event_retention_per_workspace, 50);
    }

    #[test]
    fn retention_takes_seconds_or_a_unit_and_defaults_to_a_week() {
        if std::env::var_os("HEARTH_EVENT_RETENTION").is_none() {
            assert_eq!(serve_settings(&[]).event_retention, defaults().event_retention);
            assert_eq!(defaults().event_retention, Duration::from_secs(7 * 86_400));
        }
        for (text, secs) in [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43_200), ("7d", 604_800)] {
            assert_eq!(age(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["0", "0d", "7w", "d", "", "-1h", "1.5h"] {
            assert!(age(bad).is_err(), "{bad:?}");
        }
        let err = Cli::try_parse_from(["hearth", "serve", "--event-retention-per-workspace", "0"]).err().unwrap();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_tls_certificate_needs_its_key_and_proxies_must_be_ranges() {
        for args in [&["--tls-cert=/c.pem"][..], &["--tls-key=/k.pem"], &["--trusted-proxies=everyone"]] {
            let err = Cli::try_parse_from([&["hearth", "serve"], args].concat()).err();
            assert_eq!(err.map(|err| err.exit_code()), Some(2), "{args:?}");
        }
    }

    #[test]
    fn the_agent_heartbeat_default_is_the_servers_and_fractions_are_accepted() {
        if std::env::var_os("HEARTH_AGENT_HEARTBEAT_INTERVAL").is_none() {
            assert_eq!(serve_settings(&[]).heartbeat_interval, defaults().heartbeat_interval);
            assert_eq!(serve_settings(&[]).runtime_stop_grace, defaults().runtime_stop_grace);
            assert_eq!(serve_settings(&[]).request_timeout, defaults().request_timeout);
            assert_eq!(serve_settings(&[]).header_timeout, defaults().header_timeout);
        }
        let settings = serve_settings(&["--agent-heartbeat-interval=0.5"]);
        assert_eq!(settings.heartbeat_interval, Duration::from_millis(500), "the old name still works");
        let settings = serve_settings(&["--heartbeat-interval=2", "--max-heartbeat-rate=10"]);
        assert_eq!(settings.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(settings.max_heartbeat_rate, 10);
    }

    #[test]
    fn heartbeats_are_acknowledged_after_commit_unless_queued_is_asked() {
        if std::env::var_os("HEARTH_HEARTBEAT_ACK").is_none() {
            assert_eq!(serve_settings(&[]).heartbeat_ack, hearth_server::HeartbeatAck::Committed);
            assert_eq!(serve_settings(&[]).heartbeat_ack, defaults().heartbeat_ack);
        }
        assert_eq!(serve_settings(&["--heartbeat-ack=queued"]).heartbeat_ack, hearth_server::HeartbeatAck::Queued);
        let err = Cli::try_parse_from(["hearth", "serve", "--heartbeat-ack", "later"]).err();
        assert_eq!(err.map(|err| err.exit_code()), Some(2));
    }

    #[test]
    fn zero_seconds_is_a_usage_error() {
        let err = Cli::try_parse_from(["hearth", "serve", "--sweep-interval", "0"]).err().unwrap();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn an_unknown_provisioner_is_a_usage_error() {
        let err = Cli::try_parse_from(["hearth", "serve", "--provisioner", "kubernetes"]).err().unwrap();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn the_docker_provisioner_takes_its_images_and_instance() {
        let settings = serve_settings(&[
            "--provisioner=docker",
            "--runtime-image",
            "claude-code=acme/claude:1",
            "--runtime-image=codex=acme/codex:2",
            "--default-image=acme/base:3",
            "--docker-instance=blue",
            "--container-server-url=http://10.0.0.1:7878",
        ]);
        assert_eq!(settings.provisioner, ProvisionerKind::Docker);
        let images: Vec<(&str, &str)> =
            settings.docker.runtime_images.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(images, [("claude-code", "acme/claude:1"), ("codex", "acme/codex:2")]);
        assert_eq!(settings.docker.default_image.as_deref(), Some("acme/base:3"));
        assert_eq!(settings.docker.instance.as_deref(), Some("blue"));
        assert_eq!(settings.docker.server_url.as_deref(), Some("http://10.0.0.1:7878"));
        let err = Cli::try_parse_from(["hearth", "serve", "--runtime-image", "no-equals"]).err().unwrap();
        assert!(err.to_string().contains("expected NAME=IMAGE"), "{err}");
    }

    #[test]
    fn the_bootstrap_window_defaults_to_the_provision_timeout_and_takes_zero() {
        if std::env::var_os("HEARTH_BOOTSTRAP_WINDOW").is_none() {
            assert_eq!(serve_settings(&[]).bootstrap_window, Duration::from_secs(600));
            assert_eq!(serve_settings(&[]).bootstrap_window, defaults().bootstrap_window);
        }
        assert_eq!(serve_settings(&["--bootstrap-window=30"]).bootstrap_window, Duration::from_secs(30));
        assert_eq!(serve_settings(&["--bootstrap-window=0"]).bootstrap_window, Duration::ZERO);
        for bad in ["-1", "1.5", "soon"] {
            let err = Cli::try_parse_from(["hearth", "serve", "--bootstrap-window", bad]).err();
            assert_eq!(err.map(|err| err.exit_code()), Some(2), "{bad}");
        }
    }
}
