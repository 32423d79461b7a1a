//! Namespace limits of API keys. A key may be limited to some namespaces
//! (`tasker apikey create --namespace`): it creates, reads and acts only
//! inside them. Every route says in the route table how it meets such a key
//! ([`Scope`]); the authorization middleware applies [`Scope::Path`] and
//! [`Scope::Unscoped`], the handlers of [`Scope::Handler`] routes call
//! [`check`] or [`list_filter`].

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::HttpError;
use crate::keys::Principal;
use crate::ApiState;

/// How a route meets a key limited to namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Not namespace data (health, metrics, reading components): any key.
    Any,
    /// The namespace follows from the path: `{namespace}`, a task `{id}` or a
    /// dead step `{step_id}`, a schedule `{schedule_id}`; checked before the
    /// handler runs.
    Path,
    /// The namespace is in the body or is a list filter: the handler checks.
    Handler,
    /// Covers every namespace (queues, workers, archives, analytics,
    /// changing components): refused to a limited key.
    Unscoped,
}

/// The 403 for a namespace outside the key's limit.
fn outside(who: &Principal, namespace: &str) -> HttpError {
    let scope = who.namespaces.clone().unwrap_or_default();
    HttpError::forbidden(format!(
        "this API key is limited to the namespaces {scope:?}; `{namespace}` is outside them"
    ))
    .with_details(serde_json::json!({ "namespace": namespace, "allowed": scope }))
}

/// Refuses (403) a namespace outside the key's limit.
pub fn check(who: &Principal, namespace: &str) -> Result<(), HttpError> {
    if who.reaches(namespace) {
        Ok(())
    } else {
        Err(outside(who, namespace))
    }
}

/// The namespaces a listing may show: the one asked for (checked), else the
/// key's limit (`None`: every namespace).
pub fn list_filter(who: &Principal, asked: Option<&str>) -> Result<Option<Vec<String>>, HttpError> {
    match asked {
        Some(ns) => {
            check(who, ns)?;
            Ok(Some(vec![ns.to_string()]))
        }
        None => Ok(who.namespaces.clone()),
    }
}

/// Applies `scope` to a request of a limited key (a key without limits
/// passes untouched).
pub(crate) async fn enforce(
    state: &ApiState,
    who: &Principal,
    scope: Scope,
    parts: &mut Parts,
) -> Result<(), HttpError> {
    if !who.is_scoped() {
        return Ok(());
    }
    match scope {
        Scope::Any | Scope::Handler => Ok(()),
        Scope::Unscoped => Err(HttpError::forbidden(format!(
            "this API key is limited to the namespaces {:?}; `{}` covers every namespace",
            who.namespaces.clone().unwrap_or_default(),
            parts.uri.path()
        ))),
        Scope::Path => match path_namespace(state, parts).await? {
            Some(ns) => check(who, &ns),
            // No such task or step, or a malformed id: the handler answers
            // 404 or 400 as for any key.
            None => Ok(()),
        },
    }
}

/// The namespace a path names: `{namespace}` itself, or that of the task
/// `{id}`, of the step `{step_id}` or of the schedule `{schedule_id}`.
async fn path_namespace(state: &ApiState, parts: &mut Parts) -> Result<Option<String>, HttpError> {
    let Ok(params) = RawPathParams::from_request_parts(parts, &()).await else {
        return Ok(None);
    };
    for (name, value) in params.iter() {
        match name {
            "namespace" => return Ok(Some(value.to_string())),
            "id" => {
                let Ok(id) = Uuid::parse_str(value) else {
                    return Ok(None);
                };
                return Ok(tasker_store::task::namespace_of(&state.pool, id).await?);
            }
            "schedule_id" => {
                let Ok(id) = Uuid::parse_str(value) else {
                    return Ok(None);
                };
                return Ok(tasker_store::schedule::namespace_of(&state.pool, id).await?);
            }
            "step_id" => {
                let Ok(id) = Uuid::parse_str(value) else {
                    return Ok(None);
                };
                return Ok(tasker_store::task::namespace_of_step(&state.pool, id).await?);
            }
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Permission;

    fn limited(namespaces: &[&str]) -> Principal {
        Principal {
            name: "k".into(),
            permissions: vec![Permission::TasksRead],
            namespaces: Some(namespaces.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_limited_key_reaches_only_its_namespaces() {
        let who = limited(&["billing", "shipping"]);
        assert!(check(&who, "billing").is_ok());
        let err = check(&who, "payroll").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN);
        assert!(err.body.message.contains("payroll"), "{}", err.body.message);
        assert_eq!(
            list_filter(&who, None).unwrap(),
            Some(vec!["billing".to_string(), "shipping".to_string()])
        );
        assert_eq!(
            list_filter(&who, Some("shipping")).unwrap(),
            Some(vec!["shipping".to_string()])
        );
        assert!(list_filter(&who, Some("payroll")).is_err());
        let everyone = Principal::unrestricted("admin");
        assert!(check(&everyone, "payroll").is_ok());
        assert_eq!(list_filter(&everyone, None).unwrap(), None);
    }
}
