//! The hot-path statements' files, `src/sql/<name>.sql`: the statements every
//! step runs (claim, report, heartbeat, create, take and process results),
//! each in its own file, loaded with `include_str!` by the module that runs it.
//!
//! A file begins with a header of `--` lines: what the statement does, its
//! parameters (`$1 = ...`) and its placeholders. `{steps}`, `{results}` and
//! `{archive}` name PGMQ tables and are replaced by [`crate::queue::substitute`]
//! (the one module that knows PGMQ's table names); any other placeholder is
//! the loading module's, replaced once. [`body`] drops the header at compile
//! time, so the text sent to PostgreSQL is the statement alone.

/// `file` without its header: the leading `--` and blank lines, and the
/// whitespace around what is left. A `const fn`, so it costs nothing at run time.
pub(crate) const fn body(file: &'static str) -> &'static str {
    let bytes = file.as_bytes();
    let mut i = 0;
    loop {
        let comment = i + 1 < bytes.len() && bytes[i] == b'-' && bytes[i + 1] == b'-';
        let blank = i < bytes.len() && (bytes[i] == b'\n' || bytes[i] == b'\r');
        if !comment && !blank {
            break;
        }
        while i < bytes.len() && bytes[i] != b'\n' {
            i += 1;
        }
        if i < bytes.len() {
            i += 1;
        }
    }
    file.split_at(i).1.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn the_header_is_dropped() {
        assert_eq!(
            body("-- what\n-- $1 = x\n\nSELECT $1\n  -- inline\n FROM t\n"),
            "SELECT $1\n  -- inline\n FROM t"
        );
        assert_eq!(body("SELECT 1"), "SELECT 1");
        assert_eq!(body("-- only a comment"), "");
    }

    /// Every file has a header that names each of its parameters and
    /// placeholders, and a statement after it.
    #[test]
    fn every_file_documents_its_parameters() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sql");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text: &'static str = std::fs::read_to_string(&path).unwrap().leak();
            let name = path.display();
            let statement = body(text);
            let header = &text[..statement.as_ptr() as usize - text.as_ptr() as usize];
            assert!(header.lines().count() >= 3, "{name}: no header");
            assert!(!statement.is_empty(), "{name}: no statement");
            let used = |prefix: char, end: fn(char) -> bool| -> Vec<String> {
                let mut found = Vec::new();
                for (i, _) in statement.match_indices(prefix) {
                    let rest = &statement[i + 1..];
                    let len = rest.find(|c: char| !end(c)).unwrap_or(rest.len());
                    if len > 0 {
                        found.push(format!("{prefix}{}", &rest[..len]));
                    }
                }
                found
            };
            let described = |p: &str| {
                header
                    .match_indices(p)
                    .any(|(i, _)| !header[i + p.len()..].starts_with(|c: char| c.is_ascii_digit()))
            };
            for p in used('$', |c| c.is_ascii_digit()) {
                assert!(described(&p), "{name}: {p} is not described");
            }
            for p in used('{', |c| c.is_ascii_lowercase() || c == '_') {
                assert!(
                    header.contains(&format!("{p}}}")),
                    "{name}: {p}}} is not described"
                );
            }
            files += 1;
        }
        assert_eq!(files, 5);
    }
}
