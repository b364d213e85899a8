//! Telemetry set-up, in one place: `tracing` to stderr (stdout carries each
//! command's output), filtered by `RUST_LOG` when it is set. Commands that
//! run a server or an agent call one of these first, once.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Logs at `info` unless `RUST_LOG` says otherwise (`serve`, `migrate`,
/// `agent`: the log is their output).
pub fn init() -> anyhow::Result<()> {
    init_at(LevelFilter::INFO)
}

/// Logs at `warn` unless `RUST_LOG` says otherwise, for commands whose own
/// output the server's log must not drown (`up`, `bench`).
pub fn init_quiet() -> anyhow::Result<()> {
    init_at(LevelFilter::WARN)
}

fn init_at(default: LevelFilter) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env()
        .context("RUST_LOG is not a valid log filter")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = if std::io::stderr().is_terminal() {
        builder.with_ansi(true).try_init()
    } else {
        builder.with_ansi(false).fmt_fields(plain_fields()).try_init()
    };
    installed.map_err(|err| anyhow::anyhow!("could not set up logging: {err}"))
}

/// Writes fields as the default formatter does without colours (`name=value`,
/// the message bare, a space between), for logs that go to a file or a pipe.
/// The default formatter styles every field name even with colours off, and
/// every request's span is formatted when it is made, whether or not
/// anything is logged in it, so this one makes every request cheaper (see
/// BENCHMARKS.md, "Per-request costs, and what bounds Postgres").
fn plain_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| match field.name() {
        "message" => write!(writer, "{value:?}"),
        name => write!(writer, "{}={value:?}", name.strip_prefix("r#").unwrap_or(name)),
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// Spans and events of every kind of field, as Hearth logs them.
    fn log_some() {
        let id = uuid::Uuid::nil();
        let span = tracing::info_span!("request", request_id = %id, route = "/registry/heartbeat", scheme = "http");
        let _entered = span.enter();
        tracing::warn!(status = 503_u16, latency_ms = 1.5, r#type = "x", quoted = ?"a \"b\"", "response failed: {}", 7);
        tracing::error!(error = %"db down", "plain message");
    }

    #[test]
    fn plain_fields_read_exactly_like_the_default_without_colours() {
        let (default, plain) = (Buffer::default(), Buffer::default());
        let base = || tracing_subscriber::fmt().without_time().with_ansi(false);
        tracing::subscriber::with_default(base().with_writer(default.clone()).finish(), log_some);
        tracing::subscriber::with_default(
            base().with_writer(plain.clone()).fmt_fields(super::plain_fields()).finish(),
            log_some,
        );
        let (default, plain) = (default.0.lock().unwrap().clone(), plain.0.lock().unwrap().clone());
        let (default, plain) = (String::from_utf8(default).unwrap(), String::from_utf8(plain).unwrap());
        assert!(default.contains("request_id=00000000-0000-0000-0000-000000000000"), "{default}");
        assert_eq!(plain, default);
    }
}
