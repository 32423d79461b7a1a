//! A string that must never show up in logs: [`Secret`], and [`redact_url`] for
//! showing a database URL without its password.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The text printed in place of a secret.
pub const REDACTED: &str = "***";

/// A secret string (a database URL with a password, an API key).
///
/// `Debug` and `Display` print `***`; the value is reachable only through
/// [`Secret::expose`]. Serialization writes the real value, so that a configuration
/// round-trips; use [`crate::TaskerConfig::to_redacted_toml`] to show one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value. Call this only where the secret is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Shows a database URL with its password replaced by `***`.
///
/// Scheme, user, host, port, database and query stay visible, except a
/// `password=` query or keyword parameter, whose value is replaced too.
/// `postgres://u:secret@h:5432/db` becomes `postgres://u:***@h:5432/db`.
pub fn redact_url(url: &str) -> String {
    let with_userinfo = match url.find("://") {
        Some(scheme_end) => {
            let rest_start = scheme_end + 3;
            let rest = &url[rest_start..];
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..authority_end];
            match authority.rfind('@') {
                Some(at) => {
                    let userinfo = &authority[..at];
                    let shown_userinfo = match userinfo.find(':') {
                        Some(colon) => format!("{}:{REDACTED}", &userinfo[..colon]),
                        None => userinfo.to_string(),
                    };
                    format!("{}{}{}", &url[..rest_start], shown_userinfo, &rest[at..])
                }
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    redact_password_params(&with_userinfo)
}

/// Replaces the value of every `password=` parameter (URL query or libpq keyword
/// form) with `***`.
fn redact_password_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_password_param(rest) {
        let value_start = pos + "password=".len();
        out.push_str(&rest[..value_start]);
        out.push_str(REDACTED);
        let after = &rest[value_start..];
        let value_end = after.find(['&', ' ', '#']).unwrap_or(after.len());
        rest = &after[value_end..];
    }
    out.push_str(rest);
    out
}

/// Finds `password=` at the start of a parameter (after `?`, `&`, a space, or at
/// the very start).
fn find_password_param(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password=") {
        let pos = from + found;
        let at_boundary = pos == 0 || matches!(lower.as_bytes()[pos - 1], b'?' | b'&' | b' ');
        if at_boundary {
            return Some(pos);
        }
        from = pos + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_hidden_and_the_rest_kept() {
        let shown = redact_url("postgres://u:secret@h/db");
        assert_eq!(shown, "postgres://u:***@h/db");
    }

    #[test]
    fn url_with_port_query_and_at_in_password() {
        let shown = redact_url("postgresql://user:p@ss@db.example:5432/tasker?sslmode=require");
        assert_eq!(
            shown,
            "postgresql://user:***@db.example:5432/tasker?sslmode=require"
        );
    }

    #[test]
    fn url_without_password_is_unchanged() {
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres:///tasker"), "postgres:///tasker");
    }

    #[test]
    fn password_parameters_are_hidden() {
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("host=h user=u password=secret dbname=db"),
            "host=h user=u password=*** dbname=db"
        );
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "hunter2");
    }
}
