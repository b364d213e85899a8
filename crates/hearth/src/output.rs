//! Everything that reaches the terminal: tables, JSON documents, the error
//! line, and the small formatting helpers the commands share (digests are
//! shortened by `hearth_core::display`, which the harnesses use too).
//! Commands format through this module, never through each other.
//!
//! Writes go through `io::Write` rather than `println!`, so a closed pipe
//! (`hearth events --follow | head`) ends the command quietly instead of
//! panicking.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
pub use hearth_core::display::{short_digest, short_hex};
use serde::Serialize;

/// Longest cell a table shows of free text (payloads, sample errors).
const MAX_CELL_CHARS: usize = 120;

/// An error that ends the process with a specific exit code (other than 1),
/// for callers that tell failures apart by code (the process provisioner
/// and `hearth agent`'s 75).
#[derive(Debug)]
pub struct ExitWith {
    code: u8,
    message: String,
}

impl ExitWith {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// Prints `err` as one `error: …` line on stderr; the exit code to use.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err
        .chain()
        .any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe));
    if broken_pipe {
        // The reader went away (`| head`); nothing left to say to anyone.
        return ExitCode::SUCCESS;
    }
    // If stderr itself is gone there is nowhere left to report to.
    let _ = writeln!(io::stderr().lock(), "error: {err:#}");
    match err.chain().find_map(|cause| cause.downcast_ref::<ExitWith>()) {
        Some(exit) => ExitCode::from(exit.code),
        None => ExitCode::FAILURE,
    }
}

/// Prints `text` on stdout, ending it with a newline.
pub fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()
}

/// Writes `bytes` to stdout as they are (a runtime's log), flushed.
pub fn write_raw(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

/// Prints one pretty JSON document on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    Ok(print(&serde_json::to_string_pretty(value)?)?)
}

/// Prints one compact JSON document on one line (for streams).
pub fn print_json_line<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    Ok(print(&serde_json::to_string(value)?)?)
}

/// Progress and notes for people, on stderr (never part of the output).
pub fn note(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// A progress line on stderr that redraws itself in place, only when stderr
/// is a terminal (piped or redirected output gets none).
pub struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    pub fn on_terminal() -> Self {
        use std::io::IsTerminal;
        Self { enabled: io::stderr().is_terminal(), shown: false }
    }

    /// Whether there is a terminal to show progress on.
    pub fn is_shown(&self) -> bool {
        self.enabled
    }

    /// Replaces the line with `text` (control characters become spaces).
    pub fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        // A terminal that cannot be written to gets no more progress.
        if write!(io::stderr().lock(), "\r\x1b[2K{clean}").is_err() {
            self.enabled = false;
        }
        self.shown = true;
    }

    /// Erases the line, so what follows starts on a clean one.
    pub fn clear(&mut self) {
        if self.enabled && self.shown && write!(io::stderr().lock(), "\r\x1b[2K").is_err() {
            self.enabled = false;
        }
        self.shown = false;
    }
}

/// A table with aligned columns: two spaces between columns, no trailing
/// blanks. Control characters in cells become spaces, so data from the
/// server can neither break the layout nor drive the terminal.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self { header: header.iter().map(|title| clean(title)).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().map(|cell| clean(&cell)).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.header).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (index, width) in widths.iter().enumerate() {
                let cell = line.get(index).map_or("", String::as_str);
                if index > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = width - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key:  value` lines with the values aligned (the detail view of one
/// object). Values are cleaned like table cells.
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(key, _)| key.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in fields {
        let line = format!("{:<width$}  {}", format!("{key}:"), clean(value), width = width + 1);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// `text`, cut to `MAX_CELL_CHARS` with an ellipsis.
pub fn truncate(text: &str) -> String {
    hearth_core::display::truncate(text, MAX_CELL_CHARS)
}

/// `-` for an absent or empty value.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "-".to_owned(),
    }
}

/// RFC 3339, whole seconds, UTC (`2026-11-24T11:20:00Z`).
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long ago `time` was, coarsely (`42s ago`, `5m ago`, `3h ago`, `2d ago`).
pub fn age(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3_600 => format!("{}m ago", seconds / 60),
        3_600..86_400 => format!("{}h ago", seconds / 3_600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn columns_are_aligned_to_their_widest_cell_without_trailing_blanks() {
        let mut table = Table::new(["ID", "NAME", "STATUS"]);
        table.row(["1".to_owned(), "alpha-long-name".to_owned(), "online".to_owned()]);
        table.row(["22".to_owned(), "b".to_owned(), String::new()]);
        assert_eq!(
            table.render(),
            "ID  NAME             STATUS\n\
             1   alpha-long-name  online\n\
             22  b\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut table = Table::new(["N", "X"]);
        table.row(["ünï".to_owned(), "1".to_owned()]);
        table.row(["abcd".to_owned(), "2".to_owned()]);
        assert_eq!(table.render(), "N     X\nünï   1\nabcd  2\n");
    }

    #[test]
    fn control_characters_cannot_break_a_row() {
        let mut table = Table::new(["A", "B"]);
        table.row(["x\ny".to_owned(), "\u{1b}[31mred".to_owned()]);
        assert_eq!(table.render(), "A    B\nx y   [31mred\n");
    }

    #[test]
    fn rows_shorter_or_longer_than_the_header_still_render() {
        let mut table = Table::new(["A"]);
        table.row(["1".to_owned(), "extra".to_owned()]);
        table.row([]);
        assert_eq!(table.render(), "A\n1  extra\n\n");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(Table::new(["SEQ", "EVENT"]).render(), "SEQ  EVENT\n");
    }

    #[test]
    fn fields_align_their_values() {
        let text = render_fields(&[("id", "1".to_owned()), ("status", "online".to_owned()), ("url", String::new())]);
        assert_eq!(text, "id:      1\nstatus:  online\nurl:\n");
    }

    #[test]
    fn ages_are_coarse_and_never_negative() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let ago = |seconds: i64| age(now - chrono::Duration::seconds(seconds), now);
        assert_eq!(ago(-5), "0s ago");
        assert_eq!(ago(59), "59s ago");
        assert_eq!(ago(60), "1m ago");
        assert_eq!(ago(7_200), "2h ago");
        assert_eq!(ago(3 * 86_400), "3d ago");
    }

    #[test]
    fn long_text_is_truncated_with_an_ellipsis() {
        let short = truncate(&"x".repeat(500));
        assert_eq!(short.chars().count(), MAX_CELL_CHARS);
        assert!(short.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }
}
