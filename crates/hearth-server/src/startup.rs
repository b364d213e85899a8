//! Building and running the application: store selection, data-dir files
//! (admin token, secret key), the listener, the sweeper and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use hearth_store::Store;
use hearth_store_pg::PgSettings;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{generate_secret, Authenticator};
use crate::bus::EventBus;
use crate::config::{ProvisionerKind, Settings};
use crate::crypto::SecretCipher;
use crate::provisioner::{ProcessProvisioner, Provisioner};
use crate::state::AppState;
use crate::sweeper::Sweeper;

/// The database URL in effect: the setting, or the embedded default.
pub fn database_url(settings: &Settings) -> String {
    match &settings.database_url {
        Some(url) => url.expose_secret().to_owned(),
        None => format!("sqlite://{}", settings.data_dir.join("hearth.db").display()),
    }
}

/// Opens the store the URL's scheme names and applies its migrations.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = database_url(settings);
    let scheme = url.split(':').next().unwrap_or("");
    let store: Arc<dyn Store> = match scheme {
        "postgres" | "postgresql" => {
            let pg_settings = PgSettings { acquire_timeout: settings.database_timeout, ..PgSettings::default() };
            let store = hearth_store_pg::connect_lazy(&url, &pg_settings).context("invalid postgres database URL")?;
            store.migrate().await.context("could not migrate the PostgreSQL database")?;
            Arc::new(store)
        }
        "sqlite" => {
            let store = hearth_store_sqlite::connect(&url).await.context("could not open the SQLite database")?;
            store.migrate().await.context("could not migrate the SQLite database")?;
            Arc::new(store)
        }
        // Only the scheme is echoed: the rest of the URL may hold a password.
        other => bail!("unsupported database URL scheme {other:?}; accepted: postgres://, postgresql://, sqlite:"),
    };
    Ok(store)
}

/// The admin token in effect, generating `<data-dir>/admin-token` if needed.
pub fn admin_token(settings: &Settings) -> anyhow::Result<String> {
    if let Some(token) = &settings.admin_token {
        let token = token.expose_secret().trim().to_owned();
        if token.len() < 16 {
            bail!("--admin-token must be at least 16 characters");
        }
        return Ok(token);
    }
    let path = settings.data_dir.join("admin-token");
    let (token, created) = crate::secret_file::read_or_create_secret(&path, generate_secret)?;
    if created {
        tracing::info!(path = %path.display(), "generated an admin token");
    } else {
        tracing::info!(path = %path.display(), "using the admin token from the data directory");
    }
    Ok(token)
}

fn secret_cipher(settings: &Settings) -> anyhow::Result<SecretCipher> {
    if let Some(key) = &settings.secret_key {
        return SecretCipher::from_text(key.expose_secret()).context("invalid --secret-key / HEARTH_SECRET_KEY");
    }
    let path = settings.data_dir.join("secret-key");
    let (key, created) = crate::secret_file::read_or_create_secret(&path, SecretCipher::generate_key_text)?;
    if created {
        tracing::info!(path = %path.display(), "generated the key that encrypts secrets at rest; back it up");
    }
    SecretCipher::from_text(&key).with_context(|| format!("invalid secret key in {}", path.display()))
}

/// The provisioner `--provisioner` asks for, reaching this server at
/// `addr` (`scheme`): `None` for `none`.
async fn provisioner(
    settings: &Settings,
    scheme: &str,
    mut addr: SocketAddr,
    store: &Arc<dyn Store>,
    auth: &Authenticator,
) -> anyhow::Result<Option<Arc<dyn Provisioner>>> {
    if settings.provisioner == ProvisionerKind::None {
        return Ok(None);
    }
    let program = match &settings.agent_program {
        Some(program) => program.clone(),
        None => std::env::current_exe().context("cannot find the hearth executable for the provisioner")?,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    if settings.provisioner == ProvisionerKind::Docker {
        let docker = &settings.docker;
        let instance = match &docker.instance {
            Some(instance) => instance.clone(),
            None => {
                let path = settings.data_dir.join("instance-id");
                let generate = || hex::encode(rand::random::<[u8; 4]>());
                crate::secret_file::read_or_create_secret(&path, generate)?.0
            }
        };
        let config = crate::provisioner::DockerConfig {
            instance,
            agent_binary: program,
            server_url: docker.server_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}")),
            heartbeat_interval: settings.heartbeat_interval,
            stop_grace: settings.runtime_stop_grace,
            images: crate::provisioner::Images {
                by_runtime: docker.runtime_images.clone(),
                default: docker.default_image.clone(),
            },
        };
        let provisioner =
            crate::provisioner::DockerProvisioner::connect(config, store.clone(), auth.clone()).await.context(
                "--provisioner docker: cannot reach the Docker daemon (is dockerd running? see scripts/ensure-docker)",
            )?;
        return Ok(Some(Arc::new(provisioner)));
    }
    Ok(Some(Arc::new(ProcessProvisioner::new(
        program,
        // Provisioned agents inherit this process's environment, so
        // HEARTH_CA_CERT reaches them with the https URL.
        format!("{scheme}://{addr}"),
        settings.data_dir.clone(),
        settings.heartbeat_interval,
        settings.runtime_stop_grace,
        store.clone(),
        auth.clone(),
    ))))
}

pub struct Application {
    listener: TcpListener,
    /// Native TLS, when `--tls-cert`/`--tls-key` are set.
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Connects and migrates the store, loads credentials and binds the socket.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let store = connect_store(&settings).await?;
        Self::build_with_store(settings, store).await
    }

    pub async fn build_with_store(settings: Settings, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let admin = admin_token(&settings)?;
        let workspace_limits = crate::limits::WorkspaceLimits::new(settings.rate_limit_per_workspace);
        let auth = Authenticator::new(&admin, settings.cache_entries, workspace_limits);
        auth.group_lookups(store.clone());
        let limits = crate::limits::RateLimits::new(settings.rate_limit_per_token, crate::auth::hash_token(&admin));
        let cipher = secret_cipher(&settings)?;
        let tls = settings.tls.as_ref().map(crate::listener::tls_acceptor).transpose()?;
        let latest = store.last_event_seq().await.context("cannot read the event log")?;
        let fleet = store.count_workspaces().await.context("cannot count workspaces")?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let bus = EventBus::new(latest);
        let pace = crate::pace::Pace::new(settings.heartbeat_interval, settings.max_heartbeat_rate);
        pace.set_fleet(u64::try_from(fleet).unwrap_or(0));
        let remembered = Arc::new(crate::heartbeat::Remembered::new(settings.cache_entries));
        let transitions = crate::transitions::Transitions::new(store.clone(), bus.clone(), remembered.clone());
        let heartbeats =
            crate::heartbeat::Heartbeats::start(store.clone(), transitions.clone(), remembered, settings.heartbeat_ack);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let provisioner = provisioner(&settings, scheme, listener.local_addr()?, &store, &auth).await?;
        let state = AppState::new(crate::state::Services {
            provisioner,
            transitions,
            streams: crate::bus::StreamSlots::default(),
            waits: crate::bus::StreamSlots::default(),
            long_polls: crate::bus::LongPolls::default(),
            uploads: crate::uploads::UploadSlots::new(settings.max_concurrent_uploads),
            heartbeats,
            pace: Arc::new(pace),
            limits,
            store,
            auth,
            bus,
            cipher,
            settings: Arc::new(settings),
            build: Arc::new(crate::buildinfo::Build::current()),
            shutdown: shutdown_rx,
        });
        Ok(Self { listener, tls, state, shutdown })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `https` with native TLS, `http` otherwise.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops accepting, ends event
    /// streams, lets in-flight requests finish and stops the sweeper (and the
    /// runtimes the process provisioner started).
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, tls, state, shutdown } = self;
        let provisioner = state.provisioner.clone();
        let sweeper =
            tokio::spawn(Sweeper::new(state.clone()).run(state.settings.sweep_interval, state.shutdown.clone()));
        let retention = tokio::spawn(crate::retention::run(state.clone(), state.settings.sweep_interval));
        let provisioning = provisioner.clone().map(|p| {
            let (store, transitions, bus) = (state.store.clone(), state.transitions.clone(), state.bus.clone());
            tokio::spawn(crate::provisioner::run(p, store, transitions, bus, state.shutdown.clone()))
        });
        let notices = tokio::spawn(crate::notices::follow(state.clone()));
        let renewals = state.auth.take_renewals().map(|queue| {
            tokio::spawn(crate::auth::renew(state.auth.clone(), state.store.clone(), queue, state.shutdown.clone()))
        });
        let (stop_redo, redo_stopped) = tokio::sync::oneshot::channel();
        let redo = state
            .heartbeats
            .take_redo()
            .map(|queue| tokio::spawn(crate::heartbeat::redo(state.heartbeats.clone(), queue, redo_stopped)));
        let router = crate::routes::router(state.clone());
        let shutdown_for_signal = shutdown.clone();
        let header_timeout = state.settings.header_timeout;
        crate::listener::serve(listener, router, tls, header_timeout, async move {
            signal.await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ignored_if_no_receivers = shutdown_for_signal.send(true);
        })
        .await;
        // Queued heartbeats were answered: write them before stopping, and
        // redo those whose guard failed.
        state.heartbeats.flush().await;
        let _redo_already_gone = stop_redo.send(());
        if let Some(task) = redo {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "heartbeat redo task failed");
            }
        }
        // Stops the sweeper even if the server ended for another reason.
        shutdown.send_replace(true);
        if let Err(e) = sweeper.await {
            tracing::error!(error = %e, "sweeper task failed");
        }
        if let Err(e) = retention.await {
            tracing::error!(error = %e, "event retention task failed");
        }
        if let Err(e) = notices.await {
            tracing::error!(error = %e, "notice listener task failed");
        }
        if let Some(task) = renewals {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "token renewal task failed");
            }
        }
        if let Some(task) = provisioning {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "provisioner task failed");
            }
        }
        if let Some(provisioner) = provisioner {
            provisioner.shutdown().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `hearth serve`, ready: migrations have run and the socket is bound. The
/// binary announces [`Serving::url`], then calls [`Serving::run`].
pub struct Serving {
    app: Application,
    addr: std::net::SocketAddr,
}

impl Serving {
    /// `http://ADDR`, or `https://ADDR` with native TLS: what `hearth serve`
    /// prints as `hearth listening on URL`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.app.scheme(), self.addr)
    }

    /// Serves until SIGTERM/SIGINT, then drains (see [`Application::run_until`]).
    pub async fn run(self) -> anyhow::Result<()> {
        self.app.run_until(shutdown_signal()).await
    }
}

/// Prepares `hearth serve`: connects and migrates the store, loads the
/// credentials and binds the socket. Prints nothing; the binary says where
/// it listens ([`Serving::url`]) and then runs it.
pub async fn serve(settings: Settings) -> anyhow::Result<Serving> {
    let app = Application::build(settings).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, database = app.state().store.engine().as_str(), "hearth listening");
    Ok(Serving { app, addr })
}

/// What `hearth migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub engine: hearth_store::Engine,
    /// The newest migration now applied.
    pub schema_version: i64,
}

/// Runs `hearth migrate`: applies pending migrations and says where the
/// schema now is (the binary prints it).
pub async fn migrate(settings: Settings) -> anyhow::Result<Migrated> {
    let store = connect_store(&settings).await?;
    let schema_version = store.schema_version().await?;
    Ok(Migrated { engine: store.engine(), schema_version })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
