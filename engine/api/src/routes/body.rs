//! Request-body checks the routes share: optional JSON bodies and the
//! rejection of NUL characters, which PostgreSQL cannot store.

use axum::body::Bytes;

use crate::error::{parse_json, HttpError};

/// An optional JSON body: empty (or `null`) means the default.
pub(super) fn optional_body<T>(body: &Bytes) -> Result<T, HttpError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    let parsed = parse_json(body)?;
    reject_nul(&parsed)?;
    Ok(parsed)
}

/// PostgreSQL cannot store a NUL character in text or `jsonb`: a body that
/// carries one (`"\u0000"`) is rejected with 422 naming the field, before it
/// reaches the database.
pub(super) fn reject_nul<T: serde::Serialize>(body: &T) -> Result<(), HttpError> {
    let value = serde_json::to_value(body).map_err(|e| HttpError::internal(&e))?;
    match nul_path(&value, "") {
        None => Ok(()),
        Some(field) => Err(HttpError::unprocessable(format!(
            "{field} contains a NUL character (\\u0000), which cannot be stored"
        ))
        .with_details(serde_json::json!({ "field": field }))),
    }
}

/// The path of the first string or key holding a NUL character.
fn nul_path(v: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value as V;
    match v {
        V::String(s) => s.contains('\0').then(|| at.to_string()),
        V::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, &format!("{at}[{i}]"))),
        V::Object(map) => map.iter().find_map(|(k, x)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(x, &here)
            }
        }),
        _ => None,
    }
}
