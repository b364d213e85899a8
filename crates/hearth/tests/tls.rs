//! TLS with a self-signed CA made at test time (rcgen): `hearth serve
//! --tls-cert/--tls-key`, and the CLI, `hearth agent` and `hearth-client`
//! connecting over HTTPS with `--ca-cert` / `HEARTH_CA_CERT`, refusing the
//! server (with a sentence that says what to do) without it; and Postgres
//! over TLS (`sslmode=verify-full` + `sslrootcert=`) on a private cluster
//! with `ssl=on` that refuses plain connections.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_client::{Client, ClientError, TlsRoots};
use hearth_core::WorkspaceStatus;
use support::pg_cluster::{PrivateCluster, Ssl};
use support::{hearth_command, Engine, Run, Server, ADMIN_TOKEN};

/// A CA and a server certificate it signed, for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Hearth test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// Writes the CA, certificate and key into `dir`; returns their paths.
fn write_pki(pki: &Pki, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let paths = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&paths.0, &pki.ca_pem).unwrap();
    std::fs::write(&paths.1, &pki.cert_pem).unwrap();
    std::fs::write(&paths.2, &pki.key_pem).unwrap();
    (paths.0, paths.1, paths.2)
}

/// `hearth ARGS…` against `server` with the admin token and `extra_env`.
async fn hearth(server: &Server, args: &[&str], extra_env: &[(&str, &Path)]) -> Run {
    let mut command = hearth_command(server.dir.path());
    command.args(args).env("HEARTH_SERVER", &server.url).env("HEARTH_TOKEN", ADMIN_TOKEN);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    Run::of(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_agent_and_client_speak_https_to_a_server_with_a_private_ca() {
    let pki = pki();
    let keys = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_pki(&pki, keys.path());
    let server =
        Server::start(Engine::Sqlite, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()], &[])
            .await;
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.first_line);

    // The client library: with the CA it works; without, a clear refusal.
    let roots = TlsRoots::with_ca_file(&ca).unwrap();
    let admin = Client::with_roots(&server.url, Some(ADMIN_TOKEN.into()), &roots).unwrap();
    assert_eq!(admin.health().await.unwrap().status, "ok");
    let err = Client::new(&server.url, Some(ADMIN_TOKEN.into())).unwrap().health().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("certificate") && text.contains("--ca-cert"), "{text}");
    // Plain HTTP to the TLS port is no way around it.
    let plain = server.url.replacen("https://", "http://", 1);
    assert!(Client::new(&plain, Some(ADMIN_TOKEN.into())).unwrap().health().await.is_err());

    // The CLI: --ca-cert, or HEARTH_CA_CERT.
    let created =
        hearth(&server, &["workspace", "create", "tls", "--json", "--ca-cert", ca.to_str().unwrap()], &[]).await;
    created.expect_code(0);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    hearth(&server, &["workspace", "list", "--json"], &[("HEARTH_CA_CERT", &ca)]).await.expect_code(0);
    let refused = hearth(&server, &["workspace", "list", "--json"], &[]).await;
    refused.expect_code(1);
    assert!(refused.stderr.contains("certificate") && refused.stderr.contains("HEARTH_CA_CERT"), "{}", refused.stderr);
    let missing = hearth(&server, &["workspace", "list", "--ca-cert", "/nonexistent/ca.pem"], &[]).await;
    missing.expect_code(1);
    assert!(missing.stderr.contains("cannot read the CA bundle /nonexistent/ca.pem"), "{}", missing.stderr);

    // The agent registers and heartbeats over HTTPS.
    let agent_dir = server.dir.path().join("agent");
    let mut agent = hearth_command(server.dir.path());
    agent
        .args(["agent", "--workspace", &id, "--heartbeat-interval", "0.2", "--dir"])
        .arg(&agent_dir)
        .env("HEARTH_SERVER", &server.url)
        .env("HEARTH_CA_CERT", &ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut agent = agent.spawn().unwrap();
    let id: hearth_core::WorkspaceId = id.parse().unwrap();
    let started = Instant::now();
    loop {
        let workspace = admin.get_workspace(id).await.unwrap();
        if workspace.status == WorkspaceStatus::Online && workspace.last_heartbeat_at.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the agent got online over HTTPS: {workspace:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_key_that_is_not_the_certificates_refuses_to_start() {
    let keys = tempfile::tempdir().unwrap();
    let (_, cert, _) = write_pki(&pki(), keys.path());
    let other = keys.path().join("other.key");
    std::fs::write(&other, pki().key_pem).unwrap();
    let dir = support::TestDir::new();
    let mut command = hearth_command(dir.path());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other)
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN);
    let run = Run::of(command).await;
    run.expect_code(1);
    assert!(run.stderr.contains("does not fit the certificate"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_verifies_the_server_with_the_given_ca() {
    let pki = pki();
    let Some(cluster) = PrivateCluster::start(Some(Ssl { cert: &pki.cert_pem, key: &pki.key_pem })) else { return };
    let keys = tempfile::tempdir().unwrap();
    let (ca, ..) = write_pki(&pki, keys.path());
    let dir = support::TestDir::new();
    let migrate = |url: String| {
        let mut command = hearth_command(dir.path());
        command.args(["migrate", "--data-dir"]).arg(dir.path().join("data")).arg("--database-url").arg(url);
        Run::of(command)
    };

    // verify-full with the CA: the certificate chains to it and names 127.0.0.1.
    let verified = cluster.url(&format!("?sslmode=verify-full&sslrootcert={}", ca.display()));
    migrate(verified.clone()).await.expect_code(0);
    // require: encrypted, not verified (libpq's meaning).
    migrate(cluster.url("?sslmode=require")).await.expect_code(0);
    // verify-full without the CA: the certificate is not trusted.
    let untrusted = migrate(cluster.url("?sslmode=verify-full")).await;
    untrusted.expect_code(1);
    assert!(untrusted.stderr.to_lowercase().contains("certificate"), "{}", untrusted.stderr);
    // The cluster takes TLS only, so the successes above were encrypted.
    migrate(cluster.url("?sslmode=disable")).await.expect_code(1);

    // And the server runs on it.
    let server = Server::start(Engine::Sqlite, &["--database-url", &verified], &[]).await;
    let run = server.hearth(&["workspace", "create", "over-tls", "--json"]).await;
    run.expect_code(0);
    assert_eq!(run.json()["name"], "over-tls");
}
