//! Who may call which route: the one table of the server's access rules.
//!
//! Every route has exactly one rule here, found by its method and its
//! path as the router matched it. The extractors that authenticate a
//! request (`caller.rs`) read the rule and [`crate::auth::Authenticator`]
//! enforces it, so no handler decides a role for itself. A route without a
//! rule refuses every operator (fail closed), and
//! `tests/api/roles.rs` walks every route of `/openapi.json` × every role
//! against this table, so a new route without a rule fails CI. The
//! OpenAPI document states each route's rule ([`document`]).
//!
//! Another org's objects are not the roles' business: a route that loads
//! one answers 404, as for an id that does not exist (no existence leak).

use axum::http::Method;
use hearth_core::Role;

/// What a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, build info, metrics).
    Public,
    /// A workspace's own token only: its runtime.
    Runtime,
    /// An operator token with at least this role.
    Operators(Role),
    /// The workspace's own token, or an operator token with at least this
    /// role.
    RuntimeOr(Role),
}

impl Access {
    /// The least operator role the rule admits; `None` when it admits none.
    pub fn operator_role(self) -> Option<Role> {
        match self {
            Access::Operators(role) | Access::RuntimeOr(role) => Some(role),
            Access::Public | Access::Runtime => None,
        }
    }

    /// Whether a workspace's own token is admitted.
    pub fn admits_runtime(self) -> bool {
        matches!(self, Access::Runtime | Access::RuntimeOr(_))
    }

    /// The rule in words, for the OpenAPI document and errors.
    pub fn describe(self) -> String {
        match self {
            Access::Public => "no token".into(),
            Access::Runtime => "the workspace's own token (its runtime)".into(),
            Access::Operators(Role::Admin) => "the admin token".into(),
            Access::Operators(role) => format!("an org token with role `{role}` or above, or the admin token"),
            Access::RuntimeOr(role) => {
                format!("the workspace's own token, an org token with role `{role}` or above, or the admin token")
            }
        }
    }
}

use Access::{Operators, Public, Runtime, RuntimeOr};
use Role::{Admin, Operator, Owner, Viewer};

/// The rules: method, path as routed (axum's syntax), access.
pub const RULES: &[(Method, &str, Access)] = &[
    // Service: open.
    (Method::GET, "/health", Public),
    (Method::GET, "/healthz", Public),
    (Method::GET, "/readyz", Public),
    (Method::GET, "/buildinfo", Public),
    (Method::GET, "/metrics", Public),
    (Method::GET, "/whoami", Operators(Viewer)),
    // Organisations: the admin's.
    (Method::POST, "/orgs", Operators(Admin)),
    (Method::GET, "/orgs", Operators(Admin)),
    (Method::GET, "/orgs/{id}", Operators(Admin)),
    (Method::DELETE, "/orgs/{id}", Operators(Admin)),
    (Method::PUT, "/orgs/{id}/quotas", Operators(Admin)),
    // The org's tokens and secrets: its owner's.
    (Method::POST, "/org/tokens", Operators(Owner)),
    (Method::GET, "/org/tokens", Operators(Owner)),
    (Method::DELETE, "/org/tokens/{id}", Operators(Owner)),
    (Method::PUT, "/org/secrets", Operators(Owner)),
    (Method::PUT, "/workspaces/{id}/secrets", Operators(Owner)),
    (Method::GET, "/workspaces/{id}/secrets/values", RuntimeOr(Owner)),
    // Workspaces: read by viewers, changed by operators.
    (Method::POST, "/workspaces", Operators(Operator)),
    (Method::GET, "/workspaces", Operators(Viewer)),
    (Method::POST, "/workspaces/batch", Operators(Operator)),
    (Method::GET, "/workspaces/counts", Operators(Viewer)),
    (Method::GET, "/workspaces/{id}", Operators(Viewer)),
    (Method::DELETE, "/workspaces/{id}", Operators(Operator)),
    (Method::POST, "/workspaces/{id}/pause", Operators(Operator)),
    (Method::POST, "/workspaces/{id}/resume", Operators(Operator)),
    (Method::POST, "/workspaces/{id}/restart", Operators(Operator)),
    (Method::POST, "/workspaces/{id}/hibernate", Operators(Operator)),
    (Method::GET, "/workspaces/{id}/state", RuntimeOr(Viewer)),
    (Method::GET, "/workspaces/{id}/wait", Operators(Viewer)),
    (Method::GET, "/workspaces/{id}/logs", RuntimeOr(Viewer)),
    (Method::GET, "/workspaces/{id}/events/stream", RuntimeOr(Viewer)),
    (Method::GET, "/workspaces/{id}/assets", RuntimeOr(Viewer)),
    (Method::GET, "/workspaces/{id}/assets/{*path}", RuntimeOr(Viewer)),
    // A workspace's tokens: operators run workspaces (creating one hands
    // over its first token already).
    (Method::POST, "/workspaces/{id}/tokens", Operators(Operator)),
    (Method::GET, "/workspaces/{id}/tokens", Operators(Operator)),
    (Method::DELETE, "/workspaces/{id}/tokens/{token_id}", Operators(Operator)),
    // Templates and plugins.
    (Method::POST, "/templates/import", Operators(Operator)),
    (Method::GET, "/templates", Operators(Viewer)),
    (Method::GET, "/templates/{id}", Operators(Viewer)),
    (Method::POST, "/plugins", Operators(Operator)),
    (Method::GET, "/plugins", Operators(Viewer)),
    (Method::GET, "/plugins/{name}", Operators(Viewer)),
    (Method::GET, "/workspaces/{id}/plugins", RuntimeOr(Viewer)),
    (Method::POST, "/workspaces/{id}/plugins", RuntimeOr(Operator)),
    (Method::GET, "/workspaces/{id}/plugins/{name}/download", RuntimeOr(Viewer)),
    (Method::PUT, "/workspaces/{id}/plugins/{name}", Operators(Operator)),
    (Method::DELETE, "/workspaces/{id}/plugins/{name}", Operators(Operator)),
    // Events.
    (Method::GET, "/events", Operators(Viewer)),
    (Method::GET, "/events/stream", Operators(Viewer)),
    // The runtime protocol.
    (Method::POST, "/registry/register", Runtime),
    (Method::POST, "/registry/heartbeat", Runtime),
    (Method::POST, "/registry/update-card", Runtime),
    (Method::GET, "/registry/{id}/peers", Runtime),
    (Method::GET, "/registry/discover/{target}", Runtime),
];

/// The rule of the route `route` (as routed) for `method`; `None` when the
/// table has none, which refuses every operator.
pub fn rule(method: &Method, route: &str) -> Option<Access> {
    RULES.iter().find(|(m, path, _)| m == method && *path == route).map(|&(_, _, access)| access)
}

/// The rule of a path as the OpenAPI document writes it (`{path}` where
/// the router has `{*path}`).
pub fn rule_of_documented(method: &Method, documented: &str) -> Option<Access> {
    RULES.iter().find(|(m, path, _)| m == method && path.replace("{*", "{") == documented).map(|&(_, _, access)| access)
}

/// States each operation's rule in the document: an `x-hearth-access`
/// extension (`public`, `runtime`, or the least role; `runtime-or-ROLE`)
/// and a sentence in its description.
pub fn document(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::extensions::ExtensionsBuilder;
    use utoipa::openapi::HttpMethod;
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, HttpMethod::Get, &mut item.get),
            (Method::POST, HttpMethod::Post, &mut item.post),
            (Method::PUT, HttpMethod::Put, &mut item.put),
            (Method::DELETE, HttpMethod::Delete, &mut item.delete),
            (Method::PATCH, HttpMethod::Patch, &mut item.patch),
        ];
        for (method, _, operation) in operations {
            let (Some(operation), Some(access)) = (operation.as_mut(), rule_of_documented(&method, path)) else {
                continue;
            };
            let tag = match access {
                Public => "public".to_owned(),
                Runtime => "runtime".to_owned(),
                Operators(role) => role.as_str().to_owned(),
                RuntimeOr(role) => format!("runtime-or-{role}"),
            };
            let extensions = ExtensionsBuilder::new().add("x-hearth-access", tag).build();
            match &mut operation.extensions {
                Some(existing) => existing.merge(extensions),
                None => operation.extensions = Some(extensions),
            }
            // A role below the rule's is refused with 403 (a viewer's is
            // every org token's: no org token is refused by role there).
            if access.operator_role().is_some_and(|role| role > Viewer)
                && !operation.responses.responses.contains_key("403")
            {
                let body = utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ApiErrorBody")))
                    .build();
                let refusal = utoipa::openapi::ResponseBuilder::new()
                    .description("`forbidden`: the token's role is below the one this route needs")
                    .content("application/json", body)
                    .build();
                operation.responses.responses.insert("403".into(), refusal.into());
            }
            let sentence = format!("Who may call: {}.", access.describe());
            operation.description = Some(match operation.description.take() {
                Some(text) if !text.is_empty() => format!("{text}\n\n{sentence}"),
                _ => sentence,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every routed operation has exactly one rule, and every rule a route:
    /// the table and the router cannot drift apart.
    #[test]
    fn every_route_has_exactly_one_rule_and_every_rule_a_route() {
        let (_, openapi) = crate::routes::api(1 << 20);
        let mut documented = Vec::new();
        for (path, item) in &openapi.paths.paths {
            for (method, present) in [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ] {
                if present {
                    assert!(rule_of_documented(&method, path).is_some(), "{method} {path} has no access rule");
                    documented.push((method, path.clone()));
                }
            }
        }
        for (method, path, _) in RULES {
            let matches = RULES.iter().filter(|(m, p, _)| m == method && p == path).count();
            assert_eq!(matches, 1, "{method} {path} has {matches} rules");
            let documented_path = path.replace("{*", "{");
            assert!(
                documented.iter().any(|(m, p)| m == method && *p == documented_path),
                "the rule for {method} {path} has no route"
            );
        }
    }

    /// The roles as README's table defines them, checked on every rule: a
    /// viewer never acts; the org's tokens and every secret are its
    /// owner's; only the orgs themselves are the admin's alone.
    #[test]
    fn a_viewer_never_acts_and_tokens_and_secrets_are_the_owners() {
        for &(ref method, path, access) in RULES {
            let Some(role) = access.operator_role() else { continue };
            if method != Method::GET {
                assert!(role >= Operator, "{method} {path} acts: not a viewer's");
            }
            if path.contains("secrets") || path.starts_with("/org/tokens") {
                assert!(role >= Owner, "{method} {path}: the owner's");
            }
            assert_eq!(role == Admin, path.starts_with("/orgs"), "{method} {path}: the admin's alone iff an org route");
        }
    }

    /// A route a role may be refused is documented with its 403.
    #[test]
    fn routes_that_refuse_a_role_document_their_403() {
        let (_, openapi) = crate::routes::api(1 << 20);
        let operation = |path: &str| openapi.paths.paths[path].post.clone().expect("a POST");
        assert!(operation("/workspaces").responses.responses.contains_key("403"), "operator: a viewer is refused");
        let get = openapi.paths.paths["/workspaces"].get.clone().expect("a GET");
        assert!(!get.responses.responses.contains_key("403"), "every org token is a viewer at least");
        let extension = get.extensions.as_ref().and_then(|e| e.get("x-hearth-access").cloned());
        assert_eq!(extension, Some(serde_json::json!("viewer")));
    }

    /// `?org=` naming an org that does not exist (or another org, for an
    /// org token) is a 404: every route that takes it documents one.
    #[test]
    fn every_route_that_takes_an_org_documents_its_404() {
        let (_, openapi) = crate::routes::api(1 << 20);
        let value = serde_json::to_value(&openapi).expect("the document is JSON");
        let mut checked = 0;
        for (path, item) in value["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("an item") {
                // An operation without parameters has no `parameters` at all.
                let params = operation["parameters"].as_array().cloned().unwrap_or_default();
                if params.iter().any(|p| p["name"] == "org" && p["in"] == "query") {
                    assert!(
                        operation["responses"].get("404").is_some(),
                        "{method} {path} takes ?org= but documents no 404"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 12, "{checked} routes take ?org=");
    }

    #[test]
    fn the_admin_routes_are_the_orgs_and_secret_values_need_an_owner() {
        assert_eq!(rule(&Method::POST, "/orgs"), Some(Operators(Admin)));
        assert_eq!(rule(&Method::GET, "/workspaces/{id}/secrets/values").and_then(Access::operator_role), Some(Owner));
        assert_eq!(rule(&Method::GET, "/nowhere"), None);
        assert!(Runtime.operator_role().is_none() && Runtime.admits_runtime());
    }
}
