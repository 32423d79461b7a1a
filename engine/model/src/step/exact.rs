//! JSON tasker carries exactly, or refuses: [`parse_json_exact`] and
//! [`check_value`].
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

use serde_json::Value;

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
