//! A request to create a workspace, parsed: every check `POST /workspaces`
//! (and each item of `POST /workspaces/batch`) makes without the store.
//! The template and parent lookups, which need the store, follow in
//! `workspaces.rs`.

use hearth_api::{CreateWorkspaceRequest, ErrorCode};
use hearth_core::WorkspaceId;

use crate::error::ApiError;

/// A workspace's fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkspaceSpec {
    pub name: String,
    pub role: Option<String>,
    /// 0 to 100; 1 when not given.
    pub tier: i32,
    pub parent_id: Option<WorkspaceId>,
    pub template: Option<String>,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub max_concurrent_tasks: Option<i32>,
    pub budget_limit: Option<i64>,
    pub external: bool,
    pub url: Option<String>,
    /// Mint the workspace's token in the same request.
    pub issue_token: bool,
}

impl WorkspaceSpec {
    /// The request's fields, or a 400 naming the first field that is wrong.
    /// `allow_private_urls`: `--allow-private-agent-urls`.
    pub(crate) fn parse(req: CreateWorkspaceRequest, allow_private_urls: bool) -> Result<Self, ApiError> {
        let invalid =
            |field: &str, message: String| ApiError::bad_request(ErrorCode::InvalidField, message).field(field);
        hearth_core::validate::name("name", &req.name).map_err(|m| invalid("name", m))?;
        let tier = req.tier.unwrap_or(1);
        if !(0..=100).contains(&tier) {
            return Err(invalid("tier", format!("tier must be between 0 and 100, got {tier}")));
        }
        if let Some(role) = &req.role {
            if role.chars().count() > 255 || role.chars().any(char::is_control) {
                return Err(invalid("role", "role must be at most 255 characters, no control characters".into()));
            }
        }
        for (field, value) in
            [("max_concurrent_tasks", req.max_concurrent_tasks.map(i64::from)), ("budget_limit", req.budget_limit)]
        {
            if value.is_some_and(|n| n < 0) {
                return Err(invalid(field, format!("{field} must not be negative")));
            }
        }
        if let Some(url) = &req.url {
            crate::agent_url::validate(url, allow_private_urls)
                .map_err(|m| ApiError::bad_request(ErrorCode::InvalidUrl, m).field("url"))?;
        }
        Ok(Self {
            name: req.name,
            role: req.role,
            tier,
            parent_id: req.parent_id,
            template: req.template,
            runtime: req.runtime,
            model: req.model,
            max_concurrent_tasks: req.max_concurrent_tasks,
            budget_limit: req.budget_limit,
            external: req.external.unwrap_or(false),
            url: req.url,
            issue_token: req.issue_token.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

    use super::*;

    fn request(fields: serde_json::Value) -> CreateWorkspaceRequest {
        serde_json::from_value(fields).expect("a request the wire accepts")
    }

    /// Each refusal names its field and code; the first wrong field wins.
    #[test]
    fn each_wrong_field_is_a_400_that_names_it() {
        let long_role = "r".repeat(256);
        let cases = [
            (serde_json::json!({"name": ""}), "name", ErrorCode::InvalidField),
            (serde_json::json!({"name": "a\nb"}), "name", ErrorCode::InvalidField),
            (serde_json::json!({"name": "w", "tier": 101}), "tier", ErrorCode::InvalidField),
            (serde_json::json!({"name": "w", "tier": -1}), "tier", ErrorCode::InvalidField),
            (serde_json::json!({"name": "w", "role": long_role}), "role", ErrorCode::InvalidField),
            (serde_json::json!({"name": "w", "role": "a\u{7}b"}), "role", ErrorCode::InvalidField),
            (
                serde_json::json!({"name": "w", "max_concurrent_tasks": -1}),
                "max_concurrent_tasks",
                ErrorCode::InvalidField,
            ),
            (serde_json::json!({"name": "w", "budget_limit": -5}), "budget_limit", ErrorCode::InvalidField),
            (serde_json::json!({"name": "w", "url": "ftp://x"}), "url", ErrorCode::InvalidUrl),
            (serde_json::json!({"name": "w", "url": "http://10.0.0.1:8000"}), "url", ErrorCode::InvalidUrl),
            (serde_json::json!({"name": "", "tier": 500}), "name", ErrorCode::InvalidField),
        ];
        for (fields, field, code) in cases {
            let error = WorkspaceSpec::parse(request(fields.clone()), false).expect_err(&fields.to_string());
            assert_eq!(error.status.as_u16(), 400, "{fields}");
            assert_eq!(error.body.field.as_deref(), Some(field), "{fields}: {:?}", error.body);
            assert_eq!(error.body.code, code, "{fields}");
        }
    }

    #[test]
    fn defaults_fill_what_the_request_leaves_out() {
        let spec = WorkspaceSpec::parse(request(serde_json::json!({"name": "w"})), false).unwrap();
        assert_eq!((spec.tier, spec.external, spec.issue_token), (1, false, false));
        let full = serde_json::json!({"name": "w", "tier": 0, "role": "seo", "external": true, "issue_token": true,
            "url": "http://localhost:9000", "max_concurrent_tasks": 0, "budget_limit": 0});
        let spec = WorkspaceSpec::parse(request(full), true).unwrap();
        assert_eq!(spec.tier, 0);
        assert_eq!(spec.role.as_deref(), Some("seo"));
        assert!(spec.external && spec.issue_token);
        assert_eq!(spec.url.as_deref(), Some("http://localhost:9000"));
    }

    #[test]
    fn a_private_agent_url_is_accepted_only_when_allowed() {
        let private = || request(serde_json::json!({"name": "w", "url": "http://10.0.0.1:8000"}));
        assert!(WorkspaceSpec::parse(private(), false).is_err());
        assert!(WorkspaceSpec::parse(private(), true).is_ok());
    }
}
