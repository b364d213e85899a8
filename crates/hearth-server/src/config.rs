//! Typed settings, built once at start (flags and `HEARTH_*` variables are
//! parsed by the `hearth` binary) and validated before anything listens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// How workspace runtimes are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvisionerKind {
    /// Runtimes are started elsewhere and register themselves.
    #[default]
    None,
    /// Hearth spawns `hearth agent` for each workspace.
    Process,
    /// Hearth runs each workspace as a Docker container whose entrypoint is
    /// `hearth agent` (`provisioner/docker.rs`).
    Docker,
}

/// A mass silence: more than `share` of the live fleet, and more than
/// `min` workspaces, due offline at once while the control plane is up.
/// It is more likely the network between the runtimes and Hearth than
/// that many deaths together, so the liveness sweep marks them offline at
/// `rate` per second (per replica) instead of all at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MassSilenceGuard {
    /// `1.0` (or more) turns the guard off.
    pub share: f64,
    pub min: u64,
    pub rate: f64,
}

impl Default for MassSilenceGuard {
    fn default() -> Self {
        Self { share: 0.5, min: 100, rate: 10.0 }
    }
}

impl MassSilenceGuard {
    /// `due` of `live` workspaces silent at once is a mass silence.
    pub fn is_mass(&self, due: u64, live: u64) -> bool {
        self.share < 1.0 && due > self.min && (due as f64) > self.share * (live as f64)
    }

    /// Offline decisions one pass makes before it has counted the fleet.
    pub fn uncounted_limit(&self, batch: i64) -> i64 {
        if self.share < 1.0 {
            batch.min(i64::try_from(self.min).unwrap_or(i64::MAX).max(1))
        } else {
            batch
        }
    }

    /// Offline decisions one pass makes in a mass silence, passes
    /// `interval` apart: at least one, so a death is only ever late.
    pub fn limited(&self, interval: Duration) -> i64 {
        let per_pass = (self.rate * interval.as_secs_f64()).ceil();
        if per_pass.is_finite() && per_pass >= 1.0 {
            per_pass.min(i64::MAX as f64) as i64
        } else {
            1
        }
    }
}

#[cfg(test)]
mod mass_silence_tests {
    use super::*;

    #[test]
    fn a_mass_silence_is_more_than_the_share_and_the_minimum() {
        let guard = MassSilenceGuard { share: 0.5, min: 100, rate: 10.0 };
        assert!(guard.is_mass(600, 1000));
        assert!(!guard.is_mass(500, 1000), "half is not more than half");
        assert!(!guard.is_mass(100, 150), "not more than the minimum");
        assert!(guard.is_mass(101, 150));
        assert!(!MassSilenceGuard { share: 1.0, ..guard }.is_mass(1000, 1000), "share 1 turns it off");
        assert_eq!(guard.uncounted_limit(500), 100);
        assert_eq!(MassSilenceGuard { share: 1.0, ..guard }.uncounted_limit(500), 500);
        assert_eq!(guard.limited(Duration::from_secs(5)), 50);
        assert_eq!(MassSilenceGuard { rate: 0.01, ..guard }.limited(Duration::from_secs(5)), 1, "never none");
    }
}

/// The Docker provisioner's settings.
#[derive(Debug, Clone, Default)]
pub struct DockerSettings {
    /// The server URL containers are given (`--container-server-url`);
    /// `None`: `http(s)://127.0.0.1:<port>` (containers run on the host
    /// network).
    pub server_url: Option<String>,
    /// Images by the template's `runtime:` (`--runtime-image NAME=IMAGE`).
    pub runtime_images: std::collections::BTreeMap<String, String>,
    /// The image of a workspace whose template names none and whose runtime
    /// has none (`--default-image`); `None`: such a workspace does not run.
    pub default_image: Option<String>,
    /// Names this Hearth's containers apart from another's on the same
    /// daemon (`--docker-instance`); `None`: kept in `<data_dir>/instance-id`.
    pub instance: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Native TLS: the certificate chain and key (PEM). `None`: plain HTTP
    /// (behind a TLS-terminating proxy).
    pub tls: Option<crate::listener::TlsFiles>,
    /// Proxies whose `X-Forwarded-For`/`-Proto` are believed (none by default).
    pub trusted_proxies: crate::forwarded::TrustedProxies,
    /// Longest a client may take to send a request head (and, with TLS,
    /// finish its handshake) before the connection is closed.
    pub header_timeout: Duration,
    /// `postgres://…` or `sqlite:…`; `None` means `sqlite://<data_dir>/hearth.db`.
    pub database_url: Option<SecretString>,
    pub data_dir: PathBuf,
    /// `None`: read or generate `<data_dir>/admin-token`.
    pub admin_token: Option<SecretString>,
    /// 32 bytes, base64 or hex. `None`: read or generate `<data_dir>/secret-key`.
    pub secret_key: Option<SecretString>,
    pub provisioner: ProvisionerKind,
    /// The fleet's heartbeat pace: every heartbeat answer tells the runtime
    /// to send the next one after this long (jittered; stretched past
    /// `max_heartbeat_rate`, see `pace.rs`), and runtimes the process
    /// provisioner starts begin with it.
    pub heartbeat_interval: Duration,
    /// The heartbeat budget: heartbeats per second the fleet may send in
    /// all; a fleet larger than `heartbeat_interval × this` is told to
    /// heartbeat more slowly. 0: no budget.
    pub max_heartbeat_rate: u32,
    /// When a plain heartbeat (one the batch writer writes) is answered:
    /// after its batch commits (default), or once queued (`heartbeat/mod.rs`).
    pub heartbeat_ack: HeartbeatAck,
    /// The `hearth` executable the process provisioner runs (`hearth agent …`);
    /// `None`: this process's own executable.
    pub agent_program: Option<PathBuf>,
    /// How long the process provisioner waits after SIGTERM for a runtime to
    /// finish its current step and exit, before SIGKILL.
    pub runtime_stop_grace: Duration,
    /// `--provisioner docker`'s settings.
    pub docker: DockerSettings,
    pub liveness_ttl: Duration,
    pub provision_timeout: Duration,
    pub sweep_interval: Duration,
    /// When a silence of much of the fleet is held back (README "Outages").
    pub mass_silence: MassSilenceGuard,
    /// Hibernate online workspaces idle this long; `None` (default) disables it.
    pub hibernate_after: Option<Duration>,
    pub allow_private_agent_urls: bool,
    pub require_issued_tokens: bool,
    /// How long after its creation a workspace that never had a token may
    /// bootstrap (register without one and be given one); `ZERO` turns
    /// bootstrap off, as `require_issued_tokens` does.
    pub bootstrap_window: Duration,
    /// Longest a request may take to be read and answered (the answer's
    /// head; event streams then run on): a client that sends its body too
    /// slowly gets a 408 instead of holding a connection and a handler.
    pub request_timeout: Duration,
    /// Requests per second one token may make (org and workspace tokens;
    /// the admin token is not limited), with bursts of twice that; `0`
    /// turns the limit off. A runaway runtime gets 429s instead of
    /// starving the fleet.
    pub rate_limit_per_token: u32,
    /// Requests per second one workspace may make, all its tokens together
    /// (bursts of twice that; `0` off): rotating or minting tokens does not
    /// multiply a workspace's budget.
    pub rate_limit_per_workspace: u32,
    /// Event streams one token may hold open at once (a runaway client
    /// cannot take every connection); the next one is a 429.
    pub max_streams_per_token: usize,
    /// Tokens, and workspaces on the heartbeat fast path, that each cache
    /// keeps without forgetting any (about 100 bytes per entry, allocated
    /// as used; `caches.rs` builds each cache larger so that this many never
    /// fill it). A fleet larger than this forgets some entries on every
    /// round of heartbeats, and those take the slow path: set it above the
    /// fleet's size.
    pub cache_entries: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest template or plugin upload accepted (and the plugin size cap).
    pub max_upload_bytes: usize,
    /// How long a request waits for a database connection before a 503.
    pub database_timeout: Duration,
    /// Events older than this are compacted away (each workspace's latest
    /// status event stays): `retention.rs`.
    pub event_retention: Duration,
    /// A workspace's events beyond its newest this many are compacted away
    /// (its latest status event stays), so no one workspace can grow the
    /// log without bound.
    pub event_retention_per_workspace: u32,
    /// Wait long polls (`GET /workspaces/{id}/wait`) one token may hold
    /// open at once; the next one is a 429 with `Retry-After`.
    pub max_waits_per_token: usize,
    /// Event streams and wait long polls the whole server holds open at
    /// once, every token together; the next one is a 503 with
    /// `Retry-After` (the server is full, not the client over its share).
    pub max_long_polls: usize,
    /// Live (not revoked) org tokens one org may hold; creating one more
    /// is a 409 `limit_reached`.
    pub max_org_tokens: usize,
    /// Large uploads (`POST /templates/import`, `POST /plugins` with a
    /// body past [`crate::uploads::LARGE_UPLOAD_BYTES`]) the server reads
    /// at once; one more is a 429 with `Retry-After`, before its body is read.
    pub max_concurrent_uploads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            tls: None,
            trusted_proxies: crate::forwarded::TrustedProxies::default(),
            header_timeout: Duration::from_secs(10),
            database_url: None,
            data_dir: PathBuf::from("hearth-data"),
            admin_token: None,
            secret_key: None,
            provisioner: ProvisionerKind::None,
            heartbeat_interval: Duration::from_secs(30),
            max_heartbeat_rate: 5000,
            heartbeat_ack: HeartbeatAck::Committed,
            agent_program: None,
            runtime_stop_grace: Duration::from_secs(10),
            docker: DockerSettings::default(),
            liveness_ttl: Duration::from_secs(90),
            provision_timeout: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(5),
            mass_silence: MassSilenceGuard::default(),
            hibernate_after: None,
            allow_private_agent_urls: false,
            require_issued_tokens: false,
            bootstrap_window: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
            rate_limit_per_token: 100,
            rate_limit_per_workspace: 100,
            max_streams_per_token: 16,
            cache_entries: 1_000_000,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 32 * 1024 * 1024,
            database_timeout: Duration::from_secs(5),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            event_retention_per_workspace: 1000,
            max_waits_per_token: 32,
            max_long_polls: 1024,
            max_org_tokens: 100,
            max_concurrent_uploads: 4,
        }
    }
}

impl Settings {
    /// Only a workspace created after the returned time may bootstrap at
    /// `now` (register without a token and be given its first one); `None`:
    /// bootstrap is off (`require_issued_tokens`, or a window of zero).
    pub fn bootstrap_cutoff(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        if self.require_issued_tokens || self.bootstrap_window.is_zero() {
            return None;
        }
        // A window too large for the calendar opens bootstrap to every age.
        let cutoff = chrono::Duration::from_std(self.bootstrap_window).ok().and_then(|w| now.checked_sub_signed(w));
        Some(cutoff.unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_cutoff_is_now_minus_the_window_and_none_when_off() {
        let now = chrono::Utc::now();
        let settings = Settings::default();
        assert_eq!(settings.bootstrap_window, Duration::from_secs(600), "the default provision timeout");
        assert_eq!(settings.bootstrap_cutoff(now), Some(now - chrono::Duration::seconds(600)));
        let off = Settings { bootstrap_window: Duration::ZERO, ..Settings::default() };
        assert_eq!(off.bootstrap_cutoff(now), None);
        let hardened = Settings { require_issued_tokens: true, ..Settings::default() };
        assert_eq!(hardened.bootstrap_cutoff(now), None, "--require-issued-tokens is a window of 0");
        let huge = Settings { bootstrap_window: Duration::from_secs(u64::MAX), ..Settings::default() };
        assert_eq!(huge.bootstrap_cutoff(now), Some(chrono::DateTime::<chrono::Utc>::MIN_UTC));
    }
}

/// When a heartbeat the batch writer writes is answered (`heartbeat/mod.rs` says what each costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeartbeatAck {
    /// After its batch commits.
    #[default]
    Committed,
    /// Once queued, while the writer keeps up.
    Queued,
}

impl HeartbeatAck {
    /// The name of the flag's value: `committed` or `queued`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatAck::Committed => "committed",
            HeartbeatAck::Queued => "queued",
        }
    }
}
