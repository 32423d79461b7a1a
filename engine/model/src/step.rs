//! What a handler sees and what it returns: the step context and the outcome,
//! the result message a worker sends to the orchestration queue, the error
//! kinds every runtime records ([`kind`], documented in `docs/error-kinds.md`)
//! and the rule for JSON that tasker cannot carry exactly ([`parse_json_exact`]).
//!
//! # JSON fidelity
//!
//! A step's result (and a task's input) is JSON, held as [`serde_json::Value`]
//! and stored as PostgreSQL `jsonb`. A value is kept exactly or refused, never
//! changed on the way: a JSON text from a handler (C, WASM, Python and Ruby
//! hand results over as text) is refused ([`JsonProblem::Inexact`], recorded as
//! kind [`kind::RESULT`], not retried) when it holds
//!
//! - an integer outside `-2^63 ..= 2^64 - 1` (what `Value` holds exactly; a
//!   larger one would silently become the nearest `f64`);
//! - `NaN` or `Infinity` (no JSON number; some serializers write them anyway),
//!   or a number beyond the range of `f64` (`1e400`), or one that would round
//!   to zero (`1e-400`);
//! - U+0000 in a string or key (PostgreSQL cannot store it);
//! - the same key twice in one object (all but one would be dropped).
//!
//! Numbers with a fraction or an exponent are IEEE-754 doubles, read as the
//! nearest one (which is exact for every double a language prints).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Everything a handler needs to run one attempt of one step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepContext {
    pub task_id: Uuid,
    pub step_id: Uuid,
    pub namespace: String,
    pub template: String,
    pub step_name: String,
    pub handler: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The task's input context.
    pub input: Value,
    /// Results of this step's parents, by parent step name.
    pub parent_results: BTreeMap<String, Value>,
    /// The handler configuration from the template.
    pub config: Value,
    pub timeout_seconds: u32,
    /// How many of the attempts so far ended because their worker was lost
    /// (the lease expired) rather than by the handler: they do not count
    /// against `max_attempts`. `attempt - recoveries` is the handler's own try.
    #[serde(default)]
    pub recoveries: u32,
}

/// How a handler attempt ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Done; the value becomes the step's result.
    Success { result: Value },
    /// Failed; `retryable` says whether another attempt may help.
    Failure(StepError),
}

/// A failed attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
    /// Earliest time to retry, if the handler knows better than the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// A short machine-readable kind, one of [`kind`] (`handler`, `exception`,
    /// `result`, `timeout`, `no_handler`, ...); `docs/error-kinds.md` says
    /// when each is recorded.
    pub kind: String,
}

impl Outcome {
    pub fn success(result: Value) -> Outcome {
        Outcome::Success { result }
    }
    pub fn retryable(message: impl Into<String>) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable: true,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
        })
    }
    pub fn permanent(message: impl Into<String>) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
        })
    }
    /// A failure of a given kind, e.g. a timeout.
    pub fn failure(kind: &str, message: impl Into<String>, retryable: bool) -> Outcome {
        Outcome::Failure(StepError {
            message: message.into(),
            retryable,
            retry_after_ms: None,
            kind: kind.into(),
        })
    }
    /// Sets the retry-after hint of a failure.
    pub fn retry_after(mut self, after: Duration) -> Outcome {
        if let Outcome::Failure(e) = &mut self {
            e.retry_after_ms = Some(after.as_millis() as u64);
        }
        self
    }
}

/// The message a worker sends to the orchestration results queue (`tasker_store::queue::RESULTS_QUEUE`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResultMessage {
    pub step_id: Uuid,
    pub task_id: Uuid,
    /// The attempt this outcome belongs to.
    pub attempt: u32,
    pub outcome: Outcome,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl StepError {
    /// A failure another attempt may fix.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: true,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
        }
    }
    /// A failure no retry will fix.
    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
            kind: kind::HANDLER.into(),
        }
    }
    /// Sets the kind.
    pub fn with_kind(mut self, kind: &str) -> StepError {
        self.kind = kind.into();
        self
    }
}

impl Outcome {
    /// This outcome, unless it is a success whose result tasker cannot store
    /// ([`check_value`]): then a permanent failure of kind [`kind::RESULT`]
    /// naming `step_name` and the value's path. The worker applies it to every
    /// outcome; a `Value` holds no number tasker would change, so only U+0000
    /// in a string can be found here (JSON text is checked by [`parse_json_exact`]).
    pub fn checked(self, step_name: &str) -> Outcome {
        match &self {
            Outcome::Success { result } => match check_value(result) {
                Ok(()) => self,
                Err(problem) => Outcome::Failure(StepError::result(step_name, &problem)),
            },
            Outcome::Failure(_) => self,
        }
    }
}

impl StepError {
    /// The permanent failure (kind [`kind::RESULT`]) of step `step_name`, whose
    /// handler returned a value tasker cannot store as it is.
    pub fn result(step_name: &str, problem: &JsonProblem) -> StepError {
        let message = match problem {
            JsonProblem::Syntax(detail) => {
                format!("step '{step_name}' returned a result that is not JSON: {detail}")
            }
            JsonProblem::Inexact { .. } => {
                format!(
                    "step '{step_name}' returned a result tasker cannot store exactly {problem}"
                )
            }
        };
        StepError {
            message,
            retryable: false,
            retry_after_ms: None,
            kind: kind::RESULT.into(),
        }
    }
}

/// The error kinds a failed attempt records ([`StepError::kind`]): the same
/// string for the same situation whatever runtime ran the handler (Rust, C,
/// WASM, Python, Ruby). `docs/error-kinds.md` has the table: kind, retried or
/// not, who records it, what it means. The language bindings take these
/// strings from here (Python `tasker._tasker.KIND_*`, Ruby
/// `Tasker::Native::ErrorKind`).
pub mod kind {
    /// The handler reported the failure itself, retryable or not as it said:
    /// a Rust `Err(StepError)`, Python `RetryableError`/`PermanentError`, Ruby
    /// `Tasker::RetryableError`/`Tasker::PermanentError`, C `tasker_step_fail`
    /// (or a push callback returning non-zero without an outcome), a WASM
    /// guest's `err(step-error)`.
    pub const HANDLER: &str = "handler";
    /// The handler failed in a way it did not report: an uncaught exception
    /// (Python, Ruby) or a panic (Rust). Retryable.
    pub const EXCEPTION: &str = "exception";
    /// The handler's return value cannot be stored as it is: it is not JSON
    /// (or cannot be serialized to JSON), or it holds a value JSON cannot
    /// carry exactly (see [`super::parse_json_exact`]). Not retried.
    pub const RESULT: &str = "result";
    /// The handler ended without giving the step an outcome: a C push callback
    /// returned 0 without one (not retried), or a pulled step was freed or
    /// dropped without one (retryable).
    pub const NO_OUTCOME: &str = "no_outcome";
    /// No handler of the step's name on the worker that took it (nor, with
    /// WASM, an uploaded component of that name and version). Not retried.
    pub const NO_HANDLER: &str = "no_handler";
    /// No live worker of the step's pool could run it (none that has its
    /// handler heartbeated) for `orchestration.unserved_step_timeout_seconds`;
    /// recorded by the orchestrator. Not retried.
    pub const NO_WORKER: &str = "no_worker";
    /// The attempt ran past the step's `timeout_seconds`. Retryable.
    pub const TIMEOUT: &str = "timeout";
    /// The attempt was abandoned: its task was cancelled or the worker is
    /// stopping. Retryable.
    pub const CANCELLED: &str = "cancelled";
    /// A lease expired on the last allowed attempt (its worker died or
    /// stalled), so no attempt is left. Not retried.
    pub const ATTEMPTS_EXHAUSTED: &str = "attempts_exhausted";
    /// The step's worker was lost (its lease expired: killed, stalled, or
    /// stopped past its grace) more than `worker.max_recoveries` times, so it
    /// is not started again: the step may be what kills its workers. Not retried.
    pub const WORKER_LOST: &str = "worker_lost";
    /// A fault of tasker itself around the handler (a bug, or a resource it
    /// ran out of); the message says which. Retryable.
    pub const INTERNAL: &str = "internal";
    /// A WASM component could not be loaded or compiled: retryable when the
    /// database or the host failed, not retried when the component is bad.
    pub const WASM_LOAD: &str = "wasm_load";
    /// A WASM guest trapped (panic, `unreachable`, out-of-bounds, `exit`). Not
    /// retried: a fresh instance with the same input traps the same way.
    pub const WASM_TRAP: &str = "wasm_trap";
    /// A WASM guest hit a memory, table or instance limit (`[wasm]`). Not retried.
    pub const WASM_LIMIT: &str = "wasm_limit";
    /// A WASM guest's result is larger than `wasm.max_result_bytes`. Not retried.
    pub const WASM_RESULT_TOO_LARGE: &str = "wasm_result_too_large";
    /// No free WASM instance slot (`wasm.max_concurrent_calls`). Retryable.
    pub const WASM_CAPACITY: &str = "wasm_capacity";

    /// Every kind, in the order of `docs/error-kinds.md`.
    pub const ALL: &[&str] = &[
        HANDLER,
        EXCEPTION,
        RESULT,
        NO_OUTCOME,
        NO_HANDLER,
        NO_WORKER,
        TIMEOUT,
        CANCELLED,
        ATTEMPTS_EXHAUSTED,
        WORKER_LOST,
        INTERNAL,
        WASM_LOAD,
        WASM_TRAP,
        WASM_LIMIT,
        WASM_RESULT_TOO_LARGE,
        WASM_CAPACITY,
    ];
}

/// Why a JSON text (or value) cannot be a step's result or a task's input as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonProblem {
    /// Not JSON: serde_json's message (line and column).
    Syntax(String),
    /// JSON that tasker cannot carry exactly (see the module docs): where it
    /// is (`$` is the whole value, then `.key`, `["odd key"]`, `[index]`) and what.
    Inexact { path: String, detail: String },
}

impl std::fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonProblem::Syntax(detail) => write!(f, "not valid JSON: {detail}"),
            JsonProblem::Inexact { path, detail } => write!(f, "at {path}: {detail}"),
        }
    }
}

impl std::error::Error for JsonProblem {}

/// The smallest and largest integers a JSON value keeps exactly (`i64::MIN`
/// and `u64::MAX`), as the refusal says them.
const INTEGER_RANGE: &str = "-9223372036854775808 to 18446744073709551615";

/// Parses a step result or a task input given as JSON text, refusing what
/// tasker cannot carry exactly (the module docs list it) instead of changing
/// it: an integer beyond 64 bits, `NaN`/`Infinity`, a number beyond `f64`,
/// U+0000 in a string, a key twice in one object. The error names the
/// value's path.
pub fn parse_json_exact(text: &str) -> Result<Value, JsonProblem> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => match Scanner::new(text).run() {
            Err(Stop::Found(problem)) => Err(problem),
            // Valid JSON holds no syntax error the scanner would stop at.
            Ok(()) | Err(Stop::Syntax) => Ok(value),
        },
        // Not JSON: still name `NaN` or `1e400` and where it is, when that is why.
        Err(e) => match Scanner::new(text).run() {
            Err(Stop::Found(problem)) => Err(problem),
            Ok(()) | Err(Stop::Syntax) => Err(JsonProblem::Syntax(e.to_string())),
        },
    }
}

/// Checks a value a handler returned as a `Value` (a Rust handler): the one
/// thing it can hold that tasker cannot store is U+0000 in a string or key.
pub fn check_value(value: &Value) -> Result<(), JsonProblem> {
    fn walk<'a>(v: &'a Value, path: &mut Vec<Segment<'a>>) -> Result<(), JsonProblem> {
        match v {
            Value::String(s) if s.contains('\0') => Err(inexact(path, NUL_IN_STRING.into())),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Segment::Index(i));
                    walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Object(map) => {
                for (key, item) in map {
                    path.push(Segment::Key(std::borrow::Cow::Borrowed(key)));
                    if key.contains('\0') {
                        return Err(inexact(path, NUL_IN_KEY.into()));
                    }
                    walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(value, &mut Vec::new())
}

const NUL_IN_STRING: &str = "the string holds U+0000, which PostgreSQL cannot store";
const NUL_IN_KEY: &str = "the key holds U+0000, which PostgreSQL cannot store";

/// One step of a path into a JSON value.
enum Segment<'a> {
    Key(std::borrow::Cow<'a, str>),
    Index(usize),
}

/// `$`, then `.key` (or `["other key"]`) and `[index]` per step.
fn path_text(path: &[Segment<'_>]) -> String {
    let mut out = String::from("$");
    for segment in path {
        match segment {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) => {
                let plain = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if plain {
                    out.push('.');
                    out.push_str(k);
                } else {
                    let quoted = serde_json::to_string(k.as_ref()).unwrap_or_default();
                    out.push_str(&format!("[{quoted}]"));
                }
            }
        }
    }
    out
}

fn inexact(path: &[Segment<'_>], detail: String) -> JsonProblem {
    JsonProblem::Inexact {
        path: path_text(path),
        detail,
    }
}

/// Why the scanner stopped early.
enum Stop {
    /// Something tasker cannot carry exactly.
    Found(JsonProblem),
    /// Not JSON here: serde_json's error says what.
    Syntax,
}

/// Deeper than serde_json's own limit (128): valid JSON never reaches it, and
/// it bounds the recursion on text that is not JSON.
const MAX_DEPTH: usize = 256;

/// Walks JSON text token by token (one pass, no allocation but for keys with
/// escapes) looking for what `Value` or PostgreSQL would change.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    path: Vec<Segment<'a>>,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            path: Vec::new(),
        }
    }

    fn run(mut self) -> Result<(), Stop> {
        self.value(0)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn found(&self, detail: String) -> Stop {
        Stop::Found(inexact(&self.path, detail))
    }

    fn value(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop::Syntax);
        }
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let s = self.string()?;
                if s.nul {
                    return Err(self.found(NUL_IN_STRING.into()));
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.word(0),
            _ => Err(Stop::Syntax),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Stop> {
        self.at += 1; // {
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        let mut keys: std::collections::HashSet<std::borrow::Cow<'a, str>> = Default::default();
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(Stop::Syntax);
            }
            let s = self.string()?;
            let key = self.decode(&s)?;
            self.path.push(Segment::Key(key.clone()));
            if s.nul {
                return Err(self.found(NUL_IN_KEY.into()));
            }
            if !keys.insert(key) {
                return Err(self.found(
                    "the key appears twice in one object (only one value would be kept)".into(),
                ));
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(Stop::Syntax);
            }
            self.at += 1;
            self.value(depth + 1)?;
            self.path.pop();
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Syntax),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Stop> {
        self.at += 1; // [
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            self.path.push(Segment::Index(index));
            self.value(depth + 1)?;
            self.path.pop();
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Syntax),
            }
            index += 1;
        }
    }

    /// A string token from its opening quote: where it is, and whether it
    /// has escapes and a `\u0000`.
    fn string(&mut self) -> Result<StringToken, Stop> {
        let start = self.at;
        self.at += 1; // "
        let (mut escaped, mut nul) = (false, false);
        loop {
            match self.peek() {
                None => return Err(Stop::Syntax),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(StringToken {
                        start,
                        end: self.at,
                        escaped,
                        nul,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    if self.bytes.get(self.at + 1) == Some(&b'u') {
                        let hex = self.bytes.get(self.at + 2..self.at + 6);
                        nul |= hex == Some(b"0000".as_slice());
                        self.at += 6;
                    } else {
                        self.at += 2;
                    }
                }
                Some(0) => {
                    // A raw NUL is not JSON, but name it: that is why.
                    nul = true;
                    self.at += 1;
                }
                Some(_) => self.at += 1,
            }
        }
    }

    /// The text of a string token (for keys: duplicates are compared decoded).
    fn decode(&self, s: &StringToken) -> Result<std::borrow::Cow<'a, str>, Stop> {
        let raw = self.text.get(s.start..s.end).ok_or(Stop::Syntax)?;
        if !s.escaped {
            return Ok(std::borrow::Cow::Borrowed(&raw[1..raw.len() - 1]));
        }
        serde_json::from_str::<String>(raw)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| Stop::Syntax)
    }

    /// A number token (or `-Infinity`, `-nan`, ...).
    fn number(&mut self) -> Result<(), Stop> {
        let start = self.at;
        if self.peek() == Some(b'-')
            && self
                .bytes
                .get(self.at + 1)
                .is_some_and(|c| c.is_ascii_alphabetic())
        {
            self.at += 1;
            return self.word(1);
        }
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        let token = self.text.get(start..self.at).ok_or(Stop::Syntax)?;
        if token.contains(['.', 'e', 'E']) {
            let Ok(x) = token.parse::<f64>() else {
                return Err(Stop::Syntax);
            };
            if x.is_infinite() {
                return Err(self.found(format!(
                    "the number {token} is beyond the range of a 64-bit float"
                )));
            }
            let mantissa = token.split(['e', 'E']).next().unwrap_or(token);
            if x == 0.0 && mantissa.bytes().any(|c| matches!(c, b'1'..=b'9')) {
                return Err(self.found(format!(
                    "the number {token} is too small for a 64-bit float (it would become 0)"
                )));
            }
            return Ok(());
        }
        if token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok() {
            return Ok(());
        }
        let digits = token.strip_prefix('-').unwrap_or(token);
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(self.found(format!(
                "the integer {token} is outside the range tasker keeps exactly \
                 ({INTEGER_RANGE}); send larger integers as strings"
            )));
        }
        Err(Stop::Syntax)
    }

    /// `true`, `false`, `null`, or the `NaN`/`Infinity` some serializers
    /// write (`skip`: a sign already read).
    fn word(&mut self, skip: usize) -> Result<(), Stop> {
        let start = self.at - skip;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.at += 1;
        }
        let word = self.text.get(start..self.at).ok_or(Stop::Syntax)?;
        match word {
            "true" | "false" | "null" => Ok(()),
            _ => {
                let bare = word.trim_start_matches('-').to_ascii_lowercase();
                if matches!(bare.as_str(), "nan" | "inf" | "infinity") {
                    Err(self.found(format!(
                        "{word} is not a JSON number (JSON has no NaN or Infinity)"
                    )))
                } else {
                    Err(Stop::Syntax)
                }
            }
        }
    }
}

/// A string token's place in the text.
struct StringToken {
    start: usize,
    end: usize,
    escaped: bool,
    nul: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(text: &str) -> (String, String) {
        match parse_json_exact(text) {
            Err(JsonProblem::Inexact { path, detail }) => (path, detail),
            other => panic!("{text}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn what_a_value_holds_exactly_is_accepted_as_it_is() {
        for (text, value) in [
            ("-9223372036854775808", json!(i64::MIN)),
            ("18446744073709551615", json!(u64::MAX)),
            ("9007199254740993", json!(9007199254740993u64)),
            (
                "[0.1, -0.0, 1e308, 5e-324, 1E2, 2.5e+3]",
                json!([0.1, -0.0, 1e308, 5e-324, 100.0, 2500.0]),
            ),
            (
                r#"{"a": {"b": [true, false, null, "x\"\\\u00e9"]}}"#,
                json!({"a": {"b": [true, false, null, "x\"\\é"]}}),
            ),
            ("0e-400", json!(0.0)),
        ] {
            assert_eq!(parse_json_exact(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn integers_beyond_64_bits_are_refused_with_their_path() {
        let two_64 = "18446744073709551616";
        let (path, detail) = refused(&format!(r#"{{"total": {two_64}}}"#));
        assert_eq!(path, "$.total");
        assert!(
            detail.contains(two_64) && detail.contains("18446744073709551615"),
            "{detail}"
        );
        let three_50 = "717897987691852588770249";
        assert_eq!(refused(&format!("[1, [2, {three_50}]]")).0, "$[1][1]");
        assert_eq!(refused("{\"n\": -9223372036854775809}").0, "$.n");
        assert_eq!(
            refused(r#"{"odd key": {"x": [0, 99999999999999999999999]}}"#).0,
            r#"$["odd key"].x[1]"#
        );
    }

    #[test]
    fn nan_infinity_and_out_of_range_floats_are_refused() {
        for (text, path) in [
            (r#"{"ratio": NaN}"#, "$.ratio"),
            ("[Infinity]", "$[0]"),
            ("[1, -Infinity]", "$[1]"),
            (r#"{"c": nan}"#, "$.c"),
            (r#"{"c": -nan}"#, "$.c"),
            ("[inf]", "$[0]"),
            ("1e400", "$"),
            ("[-1e400]", "$[0]"),
            ("[1e-400]", "$[0]"),
        ] {
            assert_eq!(refused(text).0, path, "{text}");
        }
        assert!(refused("[NaN]").1.contains("NaN is not a JSON number"));
    }

    #[test]
    fn nul_characters_and_duplicate_keys_are_refused() {
        assert_eq!(refused(r#"{"s": "a\u0000b"}"#).0, "$.s");
        assert!(refused(r#"["\u0000"]"#).1.contains("U+0000"));
        assert_eq!(refused(r#"{"k\u0000": 1}"#).0, r#"$["k\u0000"]"#);
        let (path, detail) = refused(r#"{"a": {"b": 1, "b": 2}}"#);
        assert_eq!(path, "$.a.b");
        assert!(detail.contains("twice"), "{detail}");
        assert_eq!(refused(r#"{"a": 1, "\u0061": 2}"#).0, "$.a");
        // Escapes that are not NUL are fine.
        assert!(parse_json_exact(r#"["\u0001\\u0000"]"#).is_ok());
    }

    #[test]
    fn text_that_is_not_json_is_a_syntax_error() {
        for text in [
            "",
            "not json",
            "[1,",
            "{\"a\" 1}",
            "01",
            "[1.]",
            "\"\u{1}\"",
            "{\"a\":1}}",
        ] {
            assert!(
                matches!(parse_json_exact(text), Err(JsonProblem::Syntax(_))),
                "{text:?}: {:?}",
                parse_json_exact(text)
            );
        }
        // Deep nesting is serde_json's error, without exhausting the stack.
        let deep = "[".repeat(200_000);
        assert!(matches!(
            parse_json_exact(&deep),
            Err(JsonProblem::Syntax(_))
        ));
        let deep = format!("{}1e400", "[".repeat(200_000));
        assert!(matches!(
            parse_json_exact(&deep),
            Err(JsonProblem::Syntax(_))
        ));
    }

    #[test]
    fn whatever_serde_json_writes_is_read_back_unchanged() {
        let value = json!({
            "ints": [0, -1, i64::MIN, i64::MAX, u64::MAX],
            "floats": [0.5, -1.25, 1.7976931348623157e308],
            "nested": {"": [{}, [], "é\n\t\"", null], "k k": {"x": true}},
        });
        for text in [
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            assert_eq!(parse_json_exact(&text), Ok(value.clone()));
        }
    }

    #[test]
    fn a_result_that_cannot_be_stored_fails_the_step_naming_it() {
        let ok = Outcome::success(json!({"a": ["x"]}));
        assert_eq!(ok.clone().checked("s"), ok);
        let out = Outcome::success(json!({"a": ["x", "nul\u{0}"]})).checked("sum");
        let Outcome::Failure(e) = out else {
            panic!("expected a failure")
        };
        assert_eq!((e.kind.as_str(), e.retryable), (kind::RESULT, false));
        assert!(
            e.message.contains("step 'sum'") && e.message.contains("$.a[1]"),
            "{}",
            e.message
        );
        let problem = parse_json_exact(r#"{"total": 18446744073709551616}"#).unwrap_err();
        let e = StepError::result("sum", &problem);
        assert_eq!(
            e.message,
            "step 'sum' returned a result tasker cannot store exactly at $.total: the integer \
             18446744073709551616 is outside the range tasker keeps exactly \
             (-9223372036854775808 to 18446744073709551615); send larger integers as strings"
        );
        let e = StepError::result("sum", &parse_json_exact("{").unwrap_err());
        assert!(e
            .message
            .starts_with("step 'sum' returned a result that is not JSON: "));
    }

    #[test]
    fn handler_failures_have_one_kind_and_every_kind_is_documented() {
        assert_eq!(StepError::retryable("x").kind, kind::HANDLER);
        assert_eq!(StepError::permanent("x").kind, kind::HANDLER);
        let mut unique = kind::ALL.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kind::ALL.len());
        let doc = include_str!("../../../docs/error-kinds.md");
        let documented: Vec<&str> = doc
            .lines()
            .skip_while(|l| !l.starts_with("| kind |"))
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert_eq!(
            documented,
            kind::ALL,
            "docs/error-kinds.md lists the kinds of `kind::ALL`, in order"
        );
    }
}
