//! `tasker_model::step::parse_json_exact`: JSON a step may return or a task
//! may take is carried exactly or refused, naming where.

use serde_json::json;
use tasker_model::step::{parse_json_exact, JsonProblem};

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
