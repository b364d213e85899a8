//! A validated heartbeat: the wire fields after range checks, clamping and
//! truncation. Only this type reaches the state machine and the store.

use serde_json::Value;

use crate::reconcile::{DesiredState, Report};

/// Most plugins a runtime may report in one heartbeat.
pub const MAX_REPORTED_PLUGINS: usize = 1000;
/// Longest `sample_error` / `current_task` / `runtime_state` (and plugin
/// error) kept, in bytes: longer texts are cut to this.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest text field (and `runtime_metadata`, as JSON) accepted at all, in
/// bytes: beyond it the heartbeat is refused naming the field, rather than
/// silently cut from a size no runtime sends.
pub const MAX_TEXT_INPUT_BYTES: usize = 64 * 1024;
/// `monthly_spend` is clamped to this many cents.
pub const MAX_MONTHLY_SPEND: i64 = 1_000_000_000_000;

/// What a runtime reported, before validation. All fields are optional on the
/// wire; `None` means "not reported".
#[derive(Debug, Clone, Default)]
pub struct RawHeartbeat {
    pub error_rate: Option<f64>,
    pub sample_error: Option<String>,
    pub active_tasks: Option<i64>,
    pub uptime_seconds: Option<i64>,
    pub current_task: Option<String>,
    pub monthly_spend: Option<f64>,
    pub runtime_state: Option<String>,
    pub runtime_metadata: Option<Value>,
    pub report: Report,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub error_rate: f64,
    pub sample_error: Option<String>,
    /// `None`: the runtime did not say (the stored value stays).
    pub active_tasks: Option<i64>,
    /// `None`: the runtime did not say (the stored value stays).
    pub uptime_seconds: Option<i64>,
    /// `None`: the runtime did not say; `Some("")`: it has no task.
    pub current_task: Option<String>,
    /// `None`: leave the stored value alone (absent or 0 on the wire).
    pub monthly_spend: Option<i64>,
    /// `None` or `""`: healthy.
    pub runtime_state: Option<String>,
    pub runtime_metadata: Option<Value>,
    /// Assets and plugins the runtime reports holding.
    pub report: Report,
    /// What the workspace must converge to; filled in by the server from the
    /// template before the heartbeat is applied (`None`: not evaluated).
    pub desired: Option<DesiredState>,
}

/// A heartbeat field out of range. The message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("error_rate must be a number between 0 and 1, got {0}")]
    ErrorRate(f64),
    #[error("{field} must be a non-negative integer, got {value}")]
    Negative { field: &'static str, value: i64 },
    #[error("runtime_metadata must be a JSON object")]
    RuntimeMetadata,
    #[error("installed_plugins may list at most {MAX_REPORTED_PLUGINS} plugins")]
    TooManyPlugins,
    #[error("{field} is {bytes} bytes; at most {MAX_TEXT_INPUT_BYTES} are accepted (and {MAX_TEXT_BYTES} kept)")]
    TooLong { field: &'static str, bytes: usize },
}

impl HeartbeatError {
    /// The wire field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            HeartbeatError::ErrorRate(_) => "error_rate",
            HeartbeatError::Negative { field, .. } | HeartbeatError::TooLong { field, .. } => field,
            HeartbeatError::RuntimeMetadata => "runtime_metadata",
            HeartbeatError::TooManyPlugins => "installed_plugins",
        }
    }
}

/// Refuses a text longer than [`MAX_TEXT_INPUT_BYTES`].
fn bounded(field: &'static str, text: Option<&str>) -> Result<(), HeartbeatError> {
    match text {
        Some(text) if text.len() > MAX_TEXT_INPUT_BYTES => Err(HeartbeatError::TooLong { field, bytes: text.len() }),
        _ => Ok(()),
    }
}

impl Heartbeat {
    pub fn validate(raw: RawHeartbeat) -> Result<Self, HeartbeatError> {
        let error_rate = raw.error_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(HeartbeatError::ErrorRate(error_rate));
        }
        let non_negative = |field: &'static str, value: Option<i64>| match value {
            Some(value) if value < 0 => Err(HeartbeatError::Negative { field, value }),
            value => Ok(value),
        };
        let active_tasks = non_negative("active_tasks", raw.active_tasks)?;
        let uptime_seconds = non_negative("uptime_seconds", raw.uptime_seconds)?;
        if matches!(&raw.runtime_metadata, Some(v) if !v.is_object() && !v.is_null()) {
            return Err(HeartbeatError::RuntimeMetadata);
        }
        bounded("sample_error", raw.sample_error.as_deref())?;
        bounded("current_task", raw.current_task.as_deref())?;
        bounded("runtime_state", raw.runtime_state.as_deref())?;
        for failure in &raw.report.failures {
            bounded("plugin_errors", Some(&failure.error))?;
        }
        if let Some(metadata) = &raw.runtime_metadata {
            let bytes = crate::event::json_len(metadata);
            if bytes > MAX_TEXT_INPUT_BYTES {
                return Err(HeartbeatError::TooLong { field: "runtime_metadata", bytes });
            }
        }
        let reported = raw.report.installed.as_ref().map_or(0, Vec::len) + raw.report.failures.len();
        if reported > MAX_REPORTED_PLUGINS {
            return Err(HeartbeatError::TooManyPlugins);
        }
        let mut report = raw.report;
        for failure in &mut report.failures {
            failure.error = truncate(std::mem::take(&mut failure.error));
        }
        let monthly_spend = raw
            .monthly_spend
            .filter(|spend| spend.is_finite())
            .map(|spend| spend.clamp(0.0, MAX_MONTHLY_SPEND as f64) as i64)
            .filter(|spend| *spend > 0);
        Ok(Self {
            error_rate,
            sample_error: raw.sample_error.map(truncate),
            active_tasks,
            uptime_seconds,
            current_task: raw.current_task.map(truncate),
            monthly_spend,
            runtime_state: raw.runtime_state.map(truncate),
            runtime_metadata: raw.runtime_metadata.filter(|v| !v.is_null()),
            report,
            desired: None,
        })
    }

    /// A digest of everything in this heartbeat that can change a decision
    /// beyond the liveness columns: which error-rate thresholds it crosses,
    /// the runtime state, the task, the delivery report and the runtime
    /// metadata. Two heartbeats with the same key decide alike on the same
    /// row; the values that feed liveness columns only (the error rate
    /// within its band, counts, uptime, spend, sample error) are left out.
    /// The server's fast path compares keys in memory (64-bit SipHash of
    /// the fields' JSON; never stored).
    pub fn decision_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let degrading = self.error_rate >= crate::lifecycle::DEGRADE_ERROR_RATE;
        let recovering = self.error_rate < crate::lifecycle::RECOVER_ERROR_RATE;
        let fields =
            (degrading, recovering, &self.runtime_state, &self.current_task, &self.report, &self.runtime_metadata);
        let mut hasher = std::hash::DefaultHasher::new();
        match serde_json::to_vec(&fields) {
            Ok(bytes) => bytes.hash(&mut hasher),
            // Every field serializes; if one ever did not, no two keys
            // would match and every heartbeat would take the locked path.
            Err(_) => return rand_key(),
        }
        hasher.finish()
    }

    /// The runtime says it is stuck.
    pub fn is_wedged(&self) -> bool {
        self.runtime_state.as_deref() == Some("wedged")
    }

    pub fn runtime_state_is_healthy(&self) -> bool {
        self.runtime_state.as_deref().unwrap_or("").is_empty()
    }
}

/// Cuts `text` to at most [`MAX_TEXT_BYTES`], on a character boundary.
pub fn truncate(mut text: String) -> String {
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawHeartbeat {
        RawHeartbeat::default()
    }

    #[test]
    fn an_empty_heartbeat_is_healthy_and_changes_nothing() {
        let hb = Heartbeat::validate(raw()).unwrap();
        assert_eq!(hb.error_rate, 0.0);
        assert_eq!(hb.current_task, None);
        assert_eq!(hb.monthly_spend, None);
        assert_eq!(hb.active_tasks, None, "absent is not 0: the stored value stays");
        assert_eq!(hb.uptime_seconds, None);
        assert!(hb.runtime_state_is_healthy());
    }

    #[test]
    fn error_rate_outside_zero_to_one_is_rejected() {
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            let err = Heartbeat::validate(RawHeartbeat { error_rate: Some(bad), ..raw() }).unwrap_err();
            assert!(err.to_string().starts_with("error_rate"), "{err}");
        }
        for good in [0.0, 0.5, 1.0] {
            assert!(Heartbeat::validate(RawHeartbeat { error_rate: Some(good), ..raw() }).is_ok());
        }
    }

    #[test]
    fn negative_counts_are_rejected_naming_the_field() {
        let err = Heartbeat::validate(RawHeartbeat { active_tasks: Some(-1), ..raw() }).unwrap_err();
        assert_eq!(err.to_string(), "active_tasks must be a non-negative integer, got -1");
        let err = Heartbeat::validate(RawHeartbeat { uptime_seconds: Some(-5), ..raw() }).unwrap_err();
        assert!(err.to_string().starts_with("uptime_seconds"));
    }

    #[test]
    fn monthly_spend_is_clamped_and_zero_means_no_update() {
        let spend = |v| Heartbeat::validate(RawHeartbeat { monthly_spend: Some(v), ..raw() }).unwrap().monthly_spend;
        assert_eq!(spend(-10.0), None);
        assert_eq!(spend(0.0), None);
        assert_eq!(spend(250.0), Some(250));
        assert_eq!(spend(1e30), Some(MAX_MONTHLY_SPEND));
    }

    #[test]
    fn long_text_is_truncated_on_a_character_boundary() {
        let text = "é".repeat(MAX_TEXT_BYTES); // 2 bytes each
        let hb = Heartbeat::validate(RawHeartbeat { current_task: Some(text), ..raw() }).unwrap();
        let kept = hb.current_task.unwrap();
        assert!(kept.len() <= MAX_TEXT_BYTES);
        assert_eq!(kept.len(), MAX_TEXT_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn runtime_state_is_cut_like_the_other_texts() {
        let hb = Heartbeat::validate(RawHeartbeat { runtime_state: Some("w".repeat(900)), ..raw() }).unwrap();
        assert_eq!(hb.runtime_state.as_deref().map(str::len), Some(900));
        let long = "w".repeat(MAX_TEXT_INPUT_BYTES);
        let hb = Heartbeat::validate(RawHeartbeat { runtime_state: Some(long), ..raw() }).unwrap();
        assert_eq!(hb.runtime_state.as_deref().map(str::len), Some(MAX_TEXT_BYTES));
        let wedged = Heartbeat::validate(RawHeartbeat { runtime_state: Some("wedged".into()), ..raw() }).unwrap();
        assert!(wedged.is_wedged());
    }

    #[test]
    fn texts_past_the_hard_limit_are_refused_naming_the_field() {
        let huge = || Some("x".repeat(MAX_TEXT_INPUT_BYTES + 1));
        let cases = [
            ("sample_error", RawHeartbeat { sample_error: huge(), ..raw() }),
            ("current_task", RawHeartbeat { current_task: huge(), ..raw() }),
            ("runtime_state", RawHeartbeat { runtime_state: huge(), ..raw() }),
            (
                "plugin_errors",
                RawHeartbeat {
                    report: Report {
                        failures: vec![crate::reconcile::PluginFailure { name: "p".into(), error: huge().unwrap() }],
                        ..Report::default()
                    },
                    ..raw()
                },
            ),
            ("runtime_metadata", RawHeartbeat { runtime_metadata: Some(serde_json::json!({"blob": huge()})), ..raw() }),
        ];
        for (field, heartbeat) in cases {
            let err = Heartbeat::validate(heartbeat).unwrap_err();
            assert_eq!(err.field(), field);
            assert!(err.to_string().starts_with(&format!("{field} is ")), "{err}");
        }
    }

    #[test]
    fn runtime_metadata_must_be_an_object() {
        let bad = RawHeartbeat { runtime_metadata: Some(serde_json::json!([1])), ..raw() };
        assert_eq!(Heartbeat::validate(bad).unwrap_err(), HeartbeatError::RuntimeMetadata);
    }
}

/// A key that matches nothing remembered (see [`Heartbeat::decision_key`]).
fn rand_key() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[cfg(test)]
mod decision_key_tests {
    use super::*;
    use crate::reconcile::PluginFailure;

    fn key(raw: RawHeartbeat) -> u64 {
        match Heartbeat::validate(raw) {
            Ok(hb) => hb.decision_key(),
            Err(e) => panic!("valid heartbeat: {e}"),
        }
    }

    fn base() -> RawHeartbeat {
        RawHeartbeat {
            error_rate: Some(0.0),
            active_tasks: Some(1),
            uptime_seconds: Some(10),
            current_task: Some("crawl".into()),
            monthly_spend: Some(3.0),
            sample_error: None,
            ..Default::default()
        }
    }

    #[test]
    fn liveness_only_values_do_not_change_the_key() {
        let k = key(base());
        assert_eq!(k, key(base()), "deterministic");
        assert_eq!(k, key(RawHeartbeat { uptime_seconds: Some(99), ..base() }));
        assert_eq!(k, key(RawHeartbeat { active_tasks: Some(7), ..base() }));
        assert_eq!(k, key(RawHeartbeat { monthly_spend: Some(12.0), ..base() }));
        assert_eq!(k, key(RawHeartbeat { sample_error: Some("x".into()), ..base() }));
        assert_eq!(k, key(RawHeartbeat { error_rate: Some(0.05), ..base() }), "same band");
    }

    #[test]
    fn decision_inputs_change_the_key() {
        let k = key(base());
        let others = [
            RawHeartbeat { error_rate: Some(0.2), ..base() },
            RawHeartbeat { error_rate: Some(0.6), ..base() },
            RawHeartbeat { current_task: Some("other".into()), ..base() },
            RawHeartbeat { current_task: None, ..base() },
            RawHeartbeat { runtime_state: Some("wedged".into()), ..base() },
            RawHeartbeat { runtime_metadata: Some(serde_json::json!({"a": 1})), ..base() },
            RawHeartbeat { report: Report { assets_digest: Some("sha256:a".into()), ..Report::default() }, ..base() },
            RawHeartbeat { report: Report { installed: Some(vec![]), ..Report::default() }, ..base() },
            RawHeartbeat {
                report: Report {
                    failures: vec![PluginFailure { name: "p".into(), error: "e".into() }],
                    ..Report::default()
                },
                ..base()
            },
        ];
        for other in others {
            let described = format!("{other:?}");
            assert_ne!(k, key(other), "{described}");
        }
    }
}
