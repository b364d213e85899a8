//! The Docker provisioner against a real dockerd (scripts/ensure-docker
//! makes sure one runs; without one these tests fail, never skip). No
//! registry is reachable: the image is built here from the host's files
//! (`/bin/sh`, `cat`, `sleep` and the C library the mounted `hearth`
//! binary links). Each test has an instance of its own, and its guard
//! removes every container, volume and image it made, pass or fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command as Std;
use std::time::{Duration, Instant};

use support::{Serving, TestDir, ADMIN_TOKEN, HEARTH};

/// Runs the docker CLI; its stdout, or a panic with its stderr.
fn docker(args: &[&str]) -> String {
    let output = Std::new("docker").args(args).output().expect("the docker CLI runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Like [`docker`], but a failure is `None` (for what may not exist).
fn docker_maybe(args: &[&str]) -> Option<String> {
    let output = Std::new("docker").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `docker logs`: the container's stdout and stderr together.
fn docker_logs(container: &str) -> String {
    let output = Std::new("docker").args(["logs", container]).output().expect("the docker CLI runs");
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// One test's Docker world: an instance id, an image, and what they leave.
struct World {
    instance: String,
    image: String,
}

impl World {
    /// Builds the runtime image from the host's files.
    fn new(tmp: &Path) -> Self {
        let tag = hex_id();
        let root = tmp.join("rootfs");
        let mut files: Vec<String> = vec!["/bin/sh".into(), "/bin/cat".into(), "/bin/sleep".into()];
        for binary in [HEARTH, "/bin/sh", "/bin/cat", "/bin/sleep"] {
            let ldd = Std::new("ldd").arg(binary).output().unwrap();
            for line in String::from_utf8_lossy(&ldd.stdout).lines() {
                if let Some(path) = line.split_whitespace().find(|word| word.starts_with('/')) {
                    files.push(path.to_owned());
                }
            }
        }
        for file in files {
            let real = std::fs::canonicalize(&file).unwrap();
            let target = root.join(file.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(real, &target).unwrap();
        }
        for dir in ["tmp", "workspace", "opt/hearth", "etc"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let image = format!("hearth-test-runtime:{tag}");
        let status = Std::new("sh")
            .arg("-c")
            .arg(format!("tar -C '{}' -c . | docker import - {image} >/dev/null", root.display()))
            .status()
            .unwrap();
        assert!(status.success(), "the test image is built");
        World { instance: format!("t{tag}"), image }
    }

    /// `--label` arguments that mark something as this instance's, for
    /// `workspace`: what Hearth puts on its own containers and volumes.
    fn labels_of(&self, workspace: &str) -> Vec<String> {
        let marks = [
            "dev.hearth.managed-by=hearth".to_owned(),
            format!("dev.hearth.instance={}", self.instance),
            format!("dev.hearth.workspace={workspace}"),
        ];
        marks.into_iter().flat_map(|mark| ["--label".to_owned(), mark]).collect()
    }

    fn label(&self) -> String {
        format!("label=dev.hearth.instance={}", self.instance)
    }

    /// Ids of this instance's containers (all states).
    fn containers(&self) -> Vec<String> {
        let out = docker(&["ps", "-aq", "--filter", &self.label()]);
        out.lines().map(str::to_owned).filter(|line| !line.is_empty()).collect()
    }

    fn container_of(&self, workspace: &str) -> String {
        format!("hearth-{}-{workspace}", self.instance)
    }

    fn running(&self, workspace: &str) -> Option<bool> {
        docker_maybe(&["inspect", "-f", "{{.State.Running}}", &self.container_of(workspace)]).map(|out| out == "true")
    }

    fn volume_exists(&self, workspace: &str) -> bool {
        docker_maybe(&["volume", "inspect", &self.container_of(workspace)]).is_some()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for container in docker_maybe(&["ps", "-aq", "--filter", &self.label()]).unwrap_or_default().lines() {
            let _ = docker_maybe(&["rm", "-f", container]);
        }
        for volume in docker_maybe(&["volume", "ls", "-q", "--filter", &self.label()]).unwrap_or_default().lines() {
            let _ = docker_maybe(&["volume", "rm", "-f", volume]);
        }
        // Best effort: an image a test never made (`-v2`, `-up`) is no error.
        let _ = docker_maybe(&["rmi", "-f", &self.image]);
        let _ = docker_maybe(&["rmi", "-f", &format!("{}-v2", self.image)]);
        let _ = docker_maybe(&["rmi", "-f", &format!("{}-up", self.image)]);
    }
}

fn hex_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn serve(dir: &Path, port: u16, world: &World) -> Serving {
    serve_with(dir, port, world, &[]).await
}

/// [`serve`] with `env` (a `DOCKER_HOST`) for the server.
async fn serve_with(dir: &Path, port: u16, world: &World, env: &[(&str, &str)]) -> Serving {
    let args = [
        "--provisioner",
        "docker",
        "--default-image",
        &world.image,
        "--docker-instance",
        &world.instance,
        "--agent-heartbeat-interval",
        "1",
        "--sweep-interval",
        "1",
        "--runtime-stop-grace",
        "4",
    ];
    support::serve_on_with(dir, port, &args, env).await
}

async fn cli(dir: &Path, port: u16, args: &[&str]) -> support::Run {
    let mut command = support::hearth_command(dir);
    command.args(args).env("HEARTH_SERVER", format!("http://127.0.0.1:{port}")).env("HEARTH_TOKEN", ADMIN_TOKEN);
    support::Run::of(command).await
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Create → a labelled container goes online, its token only in a 0600
/// file; pause and hibernate keep container and volume, resume finds the
/// volume's data;
/// a crashed server's successor adopts the container (no second one);
/// delete removes container and volume; an orphan of an unknown workspace
/// is reaped and a foreign container left alone.
#[tokio::test]
async fn workspaces_run_as_containers_from_create_to_delete() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let world = World::new(dir);
    let port = free_port();
    let mut server = serve(dir, port, &world).await;

    let created = cli(dir, port, &["workspace", "create", "w", "--json"]).await;
    created.expect_code(0);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    cli(dir, port, &["workspace", "wait", &id, "--status", "online", "--timeout", "60"]).await.expect_code(0);
    assert_eq!(world.containers().len(), 1, "one container for the workspace");
    let container = world.container_of(&id);
    let first = docker(&["inspect", "-f", "{{.Id}}", &container]);
    let token = docker(&["exec", &container, "/bin/cat", "/workspace/.auth_token"]);
    assert_eq!(token.len(), 43, "the agent's token file holds a token");
    let inspect = docker(&["inspect", &container]);
    assert!(!inspect.contains(&token), "docker inspect does not show the token");
    assert!(inspect.contains(&format!("\"dev.hearth.workspace\": \"{id}\"")), "labelled with its workspace");
    assert!(inspect.contains("\"NetworkMode\": \"host\"") && inspect.contains("\"Privileged\": false"));
    let limits =
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.ReadonlyRootfs}}";
    assert_eq!(docker(&["inspect", "-f", limits, &container]), "536870912 1000000000 256 false", "tier 1's limits");

    // Pause: the container stops and stays, with its volume.
    docker(&["exec", &container, "/bin/sh", "-c", "echo kept > /workspace/kept.txt"]);
    cli(dir, port, &["workspace", "pause", &id]).await.expect_code(0);
    wait_for("the container to stop on pause", Duration::from_secs(30), || world.running(&id) == Some(false)).await;
    assert!(world.volume_exists(&id));
    cli(dir, port, &["workspace", "resume", &id]).await.expect_code(0);
    cli(dir, port, &["workspace", "wait", &id, "--status", "online", "--timeout", "60"]).await.expect_code(0);
    assert_eq!(
        docker(&["exec", &container, "/bin/cat", "/workspace/kept.txt"]),
        "kept",
        "the volume survived the pause"
    );
    // Hibernate: the same, the agent and its program stopped within the grace.
    cli(dir, port, &["workspace", "hibernate", &id]).await.expect_code(0);
    wait_for("the container to stop on hibernate", Duration::from_secs(30), || world.running(&id) == Some(false)).await;
    assert_eq!(docker(&["inspect", "-f", "{{.State.ExitCode}}", &container]), "0", "the agent stopped cleanly");
    cli(dir, port, &["workspace", "resume", &id]).await.expect_code(0);
    cli(dir, port, &["workspace", "wait", &id, "--status", "online", "--timeout", "60"]).await.expect_code(0);

    // A crashed server's successor adopts the container: no second one.
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let _successor = serve(dir, port, &world).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(world.containers().len(), 1, "adopted, never duplicated");
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &container]), first, "the same container");

    // An orphan of an unknown workspace is reaped; a foreign container stays.
    let unknown = "00000000-0000-4000-8000-000000000001";
    let labels = world.labels_of(unknown);
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let orphan = docker(&[&["create"], labels.as_slice(), &[&world.image, "/bin/sleep", "1000"]].concat());
    let foreign = docker(&["create", &world.image, "/bin/sleep", "1000"]);
    wait_for("the orphan to be reaped", Duration::from_secs(20), || docker_maybe(&["inspect", &orphan]).is_none())
        .await;
    assert!(docker_maybe(&["inspect", &foreign]).is_some(), "a container Hearth did not create is left alone");
    docker(&["rm", "-f", &foreign]);

    // A volume left by a container removed by hand (of an unknown
    // workspace) is reaped too.
    docker(&[&["volume", "create"], labels.as_slice(), &["hearth-left-behind"]].concat());
    wait_for("the left-behind volume to be reaped", Duration::from_secs(20), || {
        docker_maybe(&["volume", "inspect", "hearth-left-behind"]).is_none()
    })
    .await;

    // Delete: container and volume gone.
    cli(dir, port, &["workspace", "delete", &id]).await.expect_code(0);
    wait_for("container and volume to go on delete", Duration::from_secs(30), || {
        world.running(&id).is_none() && !world.volume_exists(&id)
    })
    .await;
}

/// Pushes template `name` with `config` (its `config.yaml`).
async fn push_template(dir: &Path, port: u16, name: &str, config: &str) {
    let template = dir.join(format!("template-{name}"));
    std::fs::create_dir_all(&template).unwrap();
    std::fs::write(template.join("config.yaml"), config).unwrap();
    cli(dir, port, &["template", "push", template.to_str().unwrap(), "--name", name]).await.expect_code(0);
}

/// A template's program runs inside the container with its secrets and
/// assets; its output is one `hearth workspace logs` away (and followed);
/// a container that dies is started again, and one that keeps dying is
/// held back and reported with its exit code; a new image is a new
/// container on the same volume; a missing image starts nothing.
#[tokio::test]
async fn a_templates_program_runs_in_its_container_and_the_container_follows_the_template() {
    use tokio::io::AsyncBufReadExt;
    let tmp = TestDir::new();
    let dir = tmp.path();
    let world = World::new(dir);
    let port = free_port();
    let _server = serve(dir, port, &world).await;
    let admin = hearth_client::Client::new(format!("http://127.0.0.1:{port}"), Some(ADMIN_TOKEN.to_owned())).unwrap();
    let secrets = std::collections::BTreeMap::from([("ORG_KEY".to_owned(), "org-value".to_owned())]);
    admin.put_org_secrets(&secrets).await.unwrap();
    let program = "command: \"test -f $HEARTH_ASSETS_DIR/config.yaml && echo \\\"$HEARTH_WORKSPACE_ID $ORG_KEY\\\" > /workspace/seen.txt; echo hello from the container; while :; do echo tick; sleep 0.5; done\"\n";
    push_template(dir, port, "boxed", &format!("name: boxed\n{program}")).await;
    let created = cli(dir, port, &["workspace", "create", "w", "--template", "boxed", "--json"]).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    cli(dir, port, &["workspace", "wait", &id, "--for", "condition=AgentRunning", "--timeout", "60"])
        .await
        .expect_code(0);
    let container = world.container_of(&id);
    assert_eq!(
        docker_maybe(&["exec", &container, "/bin/cat", "/workspace/seen.txt"]),
        Some(format!("{id} org-value")),
        "the program ran inside, after its assets, with its workspace's id and its org's secret"
    );
    wait_for("the program's line in the container's log", Duration::from_secs(20), || {
        docker_logs(&container).contains("[stdout] hello from the container")
    })
    .await;
    let logs = cli(dir, port, &["workspace", "logs", &id, "--tail", "200"]).await;
    logs.expect_code(0);
    assert!(logs.stdout.contains("[stdout] hello from the container"), "{}", logs.stdout);
    let mut follow = support::hearth_command(dir);
    follow
        .args(["workspace", "logs", &id, "--follow", "--tail", "1"])
        .env("HEARTH_SERVER", format!("http://127.0.0.1:{port}"))
        .env("HEARTH_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::piped());
    let mut following = follow.spawn().unwrap();
    let mut followed = tokio::io::BufReader::new(following.stdout.take().unwrap()).lines();
    let ticks = async {
        let mut ticks = 0;
        while let Some(line) = followed.next_line().await.unwrap() {
            ticks += usize::from(line.contains("[stdout] tick"));
            if ticks == 3 {
                return true;
            }
        }
        false
    };
    let followed = tokio::time::timeout(Duration::from_secs(30), ticks).await;
    assert_eq!(followed, Ok(true), "new lines arrive while following");
    following.kill().await.unwrap();

    // The container dies: Hearth starts it again (restart policy no).
    let first = docker(&["inspect", "-f", "{{.State.StartedAt}}", &container]);
    docker(&["kill", &container]);
    wait_for("the dead container to be started again", Duration::from_secs(30), || {
        world.running(&id) == Some(true)
            && docker_maybe(&["inspect", "-f", "{{.State.StartedAt}}", &container]).is_some_and(|at| at != first)
    })
    .await;

    // It dies again at once: held back by the backoff, reported with its
    // exit code and restarts, then started again.
    docker(&["kill", &container]);
    wait_for("RuntimeRunning to say the container exited", Duration::from_secs(20), || {
        let runtime = condition(port, &id, "RuntimeRunning");
        runtime["reason"] == "Exited" && runtime["message"].as_str().is_some_and(|m| m.contains("exit 137"))
    })
    .await;
    let runtime = condition(port, &id, "RuntimeRunning");
    assert_eq!(runtime["status"], "False", "{runtime}");
    assert!(runtime["message"].as_str().unwrap().contains("restarted"), "{runtime}");
    wait_for("the crashed container to be started after its backoff", Duration::from_secs(30), || {
        world.running(&id) == Some(true)
    })
    .await;

    // A new image in the template: a new container, the same volume.
    docker(&["exec", &container, "/bin/sh", "-c", "echo kept > /workspace/kept.txt"]);
    let old = docker(&["inspect", "-f", "{{.Id}}", &container]);
    docker(&["tag", &world.image, &format!("{}-v2", world.image)]);
    let v2 = format!("{}-v2", world.image);
    push_template(dir, port, "boxed", &format!("name: boxed\nimage: {v2}\n{program}")).await;
    wait_for("a container of the new image", Duration::from_secs(30), || {
        docker_maybe(&["inspect", "-f", "{{.Config.Image}} {{.State.Running}}", &container])
            .is_some_and(|out| out == format!("{v2} true"))
    })
    .await;
    assert_ne!(docker(&["inspect", "-f", "{{.Id}}", &container]), old, "recreated");
    wait_for("the recreated container's agent", Duration::from_secs(20), || {
        docker_maybe(&["exec", &container, "/bin/cat", "/workspace/kept.txt"]).is_some_and(|kept| kept == "kept")
    })
    .await;

    // A template whose image is not on the daemon starts nothing.
    push_template(dir, port, "missing", "name: missing\nimage: hearth-test-no-such-image:1\n").await;
    let created = cli(dir, port, &["workspace", "create", "m", "--template", "missing", "--json"]).await;
    let missing = created.json()["id"].as_str().unwrap().to_owned();
    wait_for("RuntimeRunning to say the image is missing", Duration::from_secs(20), || {
        condition(port, &missing, "RuntimeRunning")["reason"] == "ImageMissing"
    })
    .await;
    assert!(world.running(&missing).is_none(), "no container without its image");
    let missing_condition = condition(port, &missing, "RuntimeRunning");
    assert_eq!(missing_condition["status"], "False", "{missing_condition}");
    assert!(
        missing_condition["message"].as_str().unwrap().contains("hearth-test-no-such-image:1"),
        "{missing_condition}"
    );
    let running = condition(port, &id, "RuntimeRunning");
    assert_eq!((running["status"].as_str(), running["reason"].as_str()), (Some("True"), Some("Running")), "{running}");
}

/// Workspace `id`'s condition `kind` (`null` while it has none), read with
/// `hearth workspace get`.
fn condition(port: u16, id: &str, kind: &str) -> serde_json::Value {
    let got = Std::new(HEARTH)
        .args(["workspace", "get", id, "--json"])
        .env("HEARTH_SERVER", format!("http://127.0.0.1:{port}"))
        .env("HEARTH_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    // Not JSON (the server not up yet): no conditions, so a wait_for on it
    // goes on waiting and times out naming what it waited for.
    let workspace: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap_or_default();
    let conditions = workspace["conditions"].as_array().cloned().unwrap_or_default();
    conditions.into_iter().find(|c| c["type"] == kind).unwrap_or_default()
}

/// A program that grows past its tier's memory limit is killed by the
/// kernel, and Hearth says so (`AgentRunning=False reason=OOMKilled`); the
/// container and its agent live on and start the program again.
#[tokio::test]
async fn a_program_over_its_memory_limit_is_reported_oom_killed() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let world = World::new(dir);
    let port = free_port();
    let _server = serve(dir, port, &world).await;
    // Doubles a string until the kernel kills the shell (tier 1: 512 MiB).
    let hog = "command: \"a=0123456789abcdef; while :; do a=$a$a; done\"\n";
    push_template(dir, port, "hog", &format!("name: hog\n{hog}")).await;
    let created = cli(dir, port, &["workspace", "create", "w", "--template", "hog", "--json"]).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    wait_for("AgentRunning to say the program was OOM-killed", Duration::from_secs(60), || {
        condition(port, &id, "AgentRunning")["reason"] == "OOMKilled"
    })
    .await;
    let agent = condition(port, &id, "AgentRunning");
    assert_eq!(agent["status"], "False", "{agent}");
    assert!(agent["message"].as_str().unwrap().contains("more memory than its limit allows"), "{agent}");
    let container = world.container_of(&id);
    assert_eq!(docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &container]), "536870912", "tier 1's limit");
    assert_eq!(world.running(&id), Some(true), "the agent (the container's first process) lives on");
    let runtime = condition(port, &id, "RuntimeRunning");
    assert_eq!(runtime["reason"], "Running", "the container runs: {runtime}");
}

/// `hearth e2e template-delivery` (steps A–E) passes against a server whose
/// runtimes are containers.
#[tokio::test]
async fn template_delivery_passes_with_the_docker_provisioner() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let world = World::new(dir);
    let port = free_port();
    let _server = serve(dir, port, &world).await;
    let run = cli(dir, port, &["e2e", "template-delivery", "--timeout", "60", "--json"]).await;
    run.expect_code(0);
    let report = run.json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["runtime"], "server", "the runtime was the server's container: {report}");
    assert!(world.containers().len() <= 1, "at most the e2e workspace's container is left (its cleanup removes it)");
}

/// A dockerd of the test's own, for what must not be done to the shared
/// one: stopping it. Its socket, data and state live in the test's
/// directory; dropping it stops it and removes all of that.
struct Daemon {
    root: std::path::PathBuf,
    process: Option<std::process::Child>,
}

impl Daemon {
    fn start(root: &Path) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let mut daemon = Daemon { root: root.to_owned(), process: None };
        daemon.restart();
        daemon
    }

    fn host(&self) -> String {
        format!("unix://{}", self.root.join("s.sock").display())
    }

    /// Starts it (again), on the same data, and waits until it answers.
    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("dockerd.log")).unwrap();
        let process = Std::new("dockerd")
            .arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("x"))
            .arg("--pidfile")
            .arg(self.root.join("dockerd.pid"))
            .args(["-H", &self.host(), "--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts (scripts/ensure-docker installs it)");
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.docker(&["version"]).is_none() {
            assert!(Instant::now() < deadline, "the test's dockerd answers: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it as an operator would (SIGTERM: it stops its containers).
    fn stop(&mut self) {
        let Some(mut process) = self.process.take() else { return };
        // It may have died already; then the wait below says so at once.
        let _ = Std::new("kill").args(["-TERM", &process.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while process.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = process.kill(); // ends it at last; the wait below reaps it
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = process.wait(); // reaped; how it ended does not matter here
    }

    /// The docker CLI against this daemon: its stdout, `None` on failure.
    fn docker(&self, args: &[&str]) -> Option<String> {
        let output = Std::new("docker").args(["-H", &self.host()]).args(args).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.process.is_some() {
            for container in self.docker(&["ps", "-aq"]).unwrap_or_default().lines() {
                let _ = self.docker(&["rm", "-f", container]); // best effort: the data goes below
            }
        }
        self.stop();
        // What dockerd leaves mounted under its roots (its network
        // namespace, a layer) goes before its files.
        let root = self.root.display().to_string();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut points: Vec<&str> =
            mounts.lines().filter_map(|line| line.split(' ').nth(1)).filter(|point| point.starts_with(&root)).collect();
        points.reverse();
        for point in points {
            let _ = Std::new("umount").args(["-l", point]).status(); // a failure shows in the removal below
        }
        if let Err(error) = std::fs::remove_dir_all(&self.root) {
            eprintln!("cannot remove the test dockerd's files at {root}: {error}");
        }
    }
}

/// The Docker daemon stops and comes back: meanwhile every workspace says
/// `RuntimeRunning=Unknown reason=BackendUnavailable` and nothing is
/// created or removed; afterwards each container is started once (no
/// restart storm) and its workspace runs again on the same container.
#[tokio::test]
async fn a_docker_daemon_that_restarts_is_waited_for_then_converged_on() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let world = World::new(dir);
    let mut daemon = Daemon::start(&dir.join("d"));
    let status = Std::new("sh")
        .arg("-c")
        .arg(format!("docker save {} | docker -H {} load >/dev/null", world.image, daemon.host()))
        .status()
        .unwrap();
    assert!(status.success(), "the image is loaded into the test's daemon");
    let port = free_port();
    let host = daemon.host();
    let _server = serve_with(dir, port, &world, &[("DOCKER_HOST", &host)]).await;

    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let created = cli(dir, port, &["workspace", "create", name, "--json"]).await;
        ids.push(created.json()["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        cli(dir, port, &["workspace", "wait", id, "--status", "online", "--timeout", "60"]).await.expect_code(0);
    }
    let container_ids = |daemon: &Daemon| -> Vec<String> {
        let all = daemon.docker(&["ps", "-aq", "--no-trunc", "--filter", &world.label()]).unwrap_or_default();
        let mut all: Vec<String> = all.lines().map(str::to_owned).collect();
        all.sort();
        all
    };
    let before = container_ids(&daemon);
    assert_eq!(before.len(), 2, "a container per workspace");

    daemon.stop();
    for id in &ids {
        wait_for("RuntimeRunning to say the backend is unavailable", Duration::from_secs(30), || {
            let runtime = condition(port, id, "RuntimeRunning");
            runtime["reason"] == "BackendUnavailable" && runtime["status"] == "Unknown"
        })
        .await;
    }
    // Several passes while it is away change nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let back = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    daemon.restart();
    for id in &ids {
        wait_for("the workspace's container to run again", Duration::from_secs(60), || {
            condition(port, id, "RuntimeRunning")["reason"] == "Running"
                && daemon.docker(&["inspect", "-f", "{{.State.Running}}", &world.container_of(id)]).as_deref()
                    == Some("true")
        })
        .await;
        cli(dir, port, &["workspace", "wait", id, "--status", "online", "--timeout", "60"]).await.expect_code(0);
    }
    // Passes go on; nothing more is started or created.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(container_ids(&daemon), before, "the same containers, adopted: none created, none removed");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let starts = daemon
        .docker(&[
            "events",
            "--since",
            &back.saturating_sub(1).to_string(),
            "--until",
            &now.to_string(),
            "--filter",
            "event=start",
            "--filter",
            &world.label(),
            "--format",
            "{{.Actor.ID}}",
        ])
        .unwrap();
    let mut started: Vec<&str> = starts.lines().collect();
    started.sort_unstable();
    assert_eq!(started, before.iter().map(String::as_str).collect::<Vec<_>>(), "each container started once");
}

/// `hearth up --provisioner docker`: builds its runtime image from this
/// machine's files (no registry), and narrates the example workspace,
/// running in a container, until it has converged.
#[tokio::test]
async fn up_runs_the_example_in_a_container_from_an_image_it_builds() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let world = World::new(dir);
    // This test's instance, so that the world's guard removes what up made.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/instance-id"), &world.instance).unwrap();
    let local = format!("{}-up", world.image);
    let mut command = support::hearth_command(dir);
    command
        .args(["up", "--provisioner", "docker", "--local-image", &local])
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir", "data"])
        .env("HEARTH_AGENT_HEARTBEAT_INTERVAL", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("up.log")).unwrap());
    let mut child = command.spawn().unwrap();
    let (text, finished) = support::up_walkthrough(&mut child, Duration::from_secs(90)).await;
    assert!(finished, "up did not finish its walkthrough; it said:\n{text}");
    let built = format!("Built the runtime image {local}");
    for expected in [
        built.as_str(),
        "runs every workspace as a Docker container",
        "in a Docker container labelled dev.hearth.workspace=",
        "/workspace/assets inside its container",
        "Workspace seo-agent has converged",
        "Its containers keep running",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(world.containers().len(), 1, "the example workspace's container");
    assert_eq!(docker(&["inspect", "-f", "{{.Config.Image}}", &world.containers()[0]]), local);
    Std::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
