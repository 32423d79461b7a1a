//! Limits on what a template may cost to read: its size, how deep it nests,
//! its YAML aliases and what they expand to, and its steps and dependencies.
//!
//! YAML text is checked before `serde_yaml_ng` sees it, by [`scan_yaml`]: a pass
//! over the events of the same parser (libyaml, through `unsafe-libyaml`, the
//! crate `serde_yaml_ng` itself uses) that stops at the first limit exceeded.
//! It is needed because `serde_yaml_ng` loads every event of a document before
//! deserializing anything, and libyaml costs time quadratic in the nesting of
//! flow collections (`[[[[…`: 150k levels took 49 s); and because it expands
//! aliases into owned values (one 1 MiB string referred to 1,024 times made
//! 1 GiB). The pass stops at `max_depth`, so the parser never goes deeper, and
//! computes exactly what every alias expands to (an anchor's size is known when
//! its node ends) without expanding anything, so a billion laughs costs the
//! same as its text. JSON text is scanned for its depth by [`json_depth`].

pub use super::yaml_scan::{scan_yaml, YamlShape};
use super::TemplateError;

/// Default of [`TemplateLimits::max_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;
/// Default of [`TemplateLimits::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Highest [`TemplateLimits::max_depth`] that means anything: the YAML and JSON
/// deserializers refuse more than 128 levels on their own.
pub const MAX_DEPTH_CEILING: usize = 128;
/// Default of [`TemplateLimits::max_aliases`].
pub const DEFAULT_MAX_ALIASES: usize = 1_000;
/// Default of [`TemplateLimits::max_expanded_bytes`]: 16 MiB, so that no
/// template within [`DEFAULT_MAX_BYTES`] reaches it without aliases.
pub const DEFAULT_MAX_EXPANDED_BYTES: usize = 16 << 20;
/// Default of [`TemplateLimits::max_steps`].
pub const DEFAULT_MAX_STEPS: usize = 1_000;
/// Default of [`TemplateLimits::max_edges`].
pub const DEFAULT_MAX_EDGES: usize = 5_000;
/// What each value (scalar, sequence or mapping) counts towards the expanded
/// size, besides a scalar's bytes: about what a parsed value occupies.
pub const VALUE_COST: usize = 16;

/// What a template may cost to read. Errors name the limit by its
/// configuration key (`templates.max_depth`, …: `config/README.md`).
///
/// [`Default`] holds the defaults of `[templates]`; [`Template::from_yaml_str`]
/// and the file loaders use them.
///
/// [`Template::from_yaml_str`]: super::Template::from_yaml_str
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Largest template text (YAML or JSON), in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of sequences and mappings (the template's own mapping
    /// is level 1, `steps` 2, a step 3, its `handler` 4, `config` 5).
    pub max_depth: usize,
    /// Most YAML alias uses (`*name`).
    pub max_aliases: usize,
    /// Largest expanded size: with every alias replaced by the node it names,
    /// the bytes of every scalar plus [`VALUE_COST`] per value.
    pub max_expanded_bytes: usize,
    /// Most steps.
    pub max_steps: usize,
    /// Most dependencies (`depends_on` entries) over all steps: the edges each
    /// task of the template writes.
    pub max_edges: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            max_aliases: DEFAULT_MAX_ALIASES,
            max_expanded_bytes: DEFAULT_MAX_EXPANDED_BYTES,
            max_steps: DEFAULT_MAX_STEPS,
            max_edges: DEFAULT_MAX_EDGES,
        }
    }
}

/// The configuration key of each limit, as errors name them.
pub(crate) mod key {
    pub const MAX_BYTES: &str = "templates.max_bytes";
    pub const MAX_DEPTH: &str = "templates.max_depth";
    pub const MAX_ALIASES: &str = "templates.max_aliases";
    pub const MAX_EXPANDED_BYTES: &str = "templates.max_expanded_bytes";
    pub const MAX_STEPS: &str = "templates.max_steps";
    pub const MAX_EDGES: &str = "templates.max_edges";
}

pub(super) fn exceeded(limit: &'static str, max: usize, what: String) -> TemplateError {
    TemplateError::LimitExceeded {
        limit,
        max: max as u64,
        what,
    }
}

impl TemplateLimits {
    /// Refuses text longer than `max_bytes`.
    pub fn check_size(&self, len: usize) -> Result<(), TemplateError> {
        if len > self.max_bytes {
            return Err(exceeded(
                key::MAX_BYTES,
                self.max_bytes,
                format!("template text is {len} bytes"),
            ));
        }
        Ok(())
    }

    /// Refuses more than `max_steps` steps or `max_edges` dependencies.
    pub fn check_counts(&self, steps: usize, edges: usize) -> Result<(), TemplateError> {
        if steps > self.max_steps {
            return Err(exceeded(
                key::MAX_STEPS,
                self.max_steps,
                format!("template has {steps} steps"),
            ));
        }
        if edges > self.max_edges {
            return Err(exceeded(
                key::MAX_EDGES,
                self.max_edges,
                format!("template has {edges} dependencies (depends_on entries)"),
            ));
        }
        Ok(())
    }
}

/// The deepest nesting of arrays and objects in JSON text, stopping as soon as
/// it passes `max_depth` (then `max_depth + 1`). Linear, no allocation; does not
/// check the text is JSON (the deserializer does).
pub fn json_depth(text: &[u8], max_depth: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > max_depth {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses JSON text over `max_bytes` or nested deeper than `max_depth`.
pub fn scan_json(text: &[u8], limits: &TemplateLimits) -> Result<(), TemplateError> {
    limits.check_size(text.len())?;
    if json_depth(text, limits.max_depth) > limits.max_depth {
        return Err(exceeded(
            key::MAX_DEPTH,
            limits.max_depth,
            "template nests deeper than allowed".to_string(),
        ));
    }
    Ok(())
}

/// The depth of a parsed JSON value (1 for an empty object), without recursion.
pub fn value_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            serde_json::Value::Array(items) => {
                deepest = deepest.max(d);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            serde_json::Value::Object(map) => {
                deepest = deepest.max(d);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Refuses a parsed JSON value nested deeper than `max_depth`.
pub fn check_value_depth(
    value: &serde_json::Value,
    limits: &TemplateLimits,
) -> Result<(), TemplateError> {
    let depth = value_depth(value);
    if depth > limits.max_depth {
        return Err(exceeded(
            key::MAX_DEPTH,
            limits.max_depth,
            format!("template nests {depth} levels deep"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::template::Template;

    fn small() -> TemplateLimits {
        TemplateLimits {
            max_bytes: 10_000,
            max_depth: 8,
            max_aliases: 5,
            max_expanded_bytes: 2_000,
            max_steps: 3,
            max_edges: 2,
        }
    }

    fn limit_of(err: &TemplateError) -> &'static str {
        match err.problem() {
            TemplateError::LimitExceeded { limit, .. } => limit,
            other => panic!("not a limit: {other}"),
        }
    }

    #[test]
    fn shape_of_an_ordinary_template() {
        let text = "namespace: t\nname: n\nversion: 1.0.0\nbase: &r { max_attempts: 2 }\nsteps:\n  - { name: a, handler: { name: h } }\n  - { name: b, handler: { name: h }, retry: *r }\n";
        let shape = scan_yaml(text, &TemplateLimits::default()).expect("within limits");
        assert_eq!(shape.depth, 4);
        assert_eq!(shape.aliases, 1);
        // The alias adds what it names: the mapping (16) and its two scalars.
        let without = scan_yaml(
            &text.replace("retry: *r", "retry: x"),
            &TemplateLimits::default(),
        )
        .expect("within limits");
        let anchored = VALUE_COST + (VALUE_COST + 12) + (VALUE_COST + 1);
        assert_eq!(
            shape.expanded_bytes,
            without.expanded_bytes - (VALUE_COST + 1) + anchored
        );
    }

    #[test]
    fn each_limit_is_named() {
        let limits = small();
        let big = "a".repeat(10_001);
        assert_eq!(
            limit_of(&scan_yaml(&big, &limits).expect_err("big")),
            "templates.max_bytes"
        );
        let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
        let err = scan_yaml(&deep, &limits).expect_err("deep");
        assert_eq!(limit_of(&err), "templates.max_depth");
        assert_eq!(
            err.to_string(),
            "template nests deeper than allowed at line 1, column 9: \
             over the limit templates.max_depth = 8"
        );
        scan_yaml(&format!("{}{}", "[".repeat(8), "]".repeat(8)), &limits)
            .expect("8 levels are fine");
        let block = "- ".repeat(9) + "x\n";
        assert_eq!(
            limit_of(&scan_yaml(&block, &limits).expect_err("block")),
            "templates.max_depth"
        );
        let aliases = format!("a: &a x\nb: [{}]\n", ["*a"; 6].join(", "));
        assert_eq!(
            limit_of(&scan_yaml(&aliases, &limits).expect_err("aliases")),
            "templates.max_aliases"
        );
        let expands = format!("a: &a {}\nb: [*a, *a, *a, *a, *a]\n", "x".repeat(400));
        assert_eq!(
            limit_of(&scan_yaml(&expands, &limits).expect_err("expands")),
            "templates.max_expanded_bytes"
        );
        assert_eq!(
            limit_of(&limits.check_counts(4, 0).expect_err("steps")),
            "templates.max_steps"
        );
        assert_eq!(
            limit_of(&limits.check_counts(3, 3).expect_err("edges")),
            "templates.max_edges"
        );
        limits.check_counts(3, 2).expect("at the caps");
    }

    #[test]
    fn billion_laughs_is_refused_from_its_text_alone() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = Instant::now();
        let err = scan_yaml(&text, &TemplateLimits::default()).expect_err("laughs");
        assert_eq!(limit_of(&err), "templates.max_expanded_bytes");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_alias_bomb_of_the_finding_is_refused_without_expanding() {
        // One 512 KiB string, referred to 1,000 times (within max_aliases):
        // 512 MiB expanded, refused after 32 references.
        let text = format!(
            "namespace: t\nname: n\nversion: 1.0.0\ndescription: &big \"{}\"\nsteps: [{}]\n",
            "x".repeat(512 << 10),
            vec!["*big"; 1_000].join(", ")
        );
        let started = Instant::now();
        let err = Template::from_yaml_str(&text, "<bomb>").expect_err("bomb");
        assert_eq!(limit_of(&err), "templates.max_expanded_bytes");
        assert!(
            err.to_string()
                .starts_with("<bomb>: template grows too large with its YAML aliases replaced"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn deep_nesting_costs_linear_time() {
        // The finding's 150k levels (300 KB), through the public parser.
        let text = format!("{}{}", "[".repeat(150_000), "]".repeat(150_000));
        let started = Instant::now();
        let err = Template::from_yaml_str(&text, "<deep>").expect_err("deep");
        assert_eq!(limit_of(&err), "templates.max_depth");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // Without a size limit the depth limit alone keeps it cheap: the scan
        // stops at level 65 whatever follows.
        let unsized_limits = TemplateLimits {
            max_bytes: usize::MAX,
            ..TemplateLimits::default()
        };
        for text in [
            "[".repeat(4_000_000),
            "{a: ".repeat(1_000_000),
            "- ".repeat(1_000_000),
        ] {
            let started = Instant::now();
            let err = scan_yaml(&text, &unsized_limits).expect_err("deep");
            assert_eq!(limit_of(&err), "templates.max_depth");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn aliases_within_the_limits_still_work() {
        let text = "namespace: t\nname: n\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: { name: h }\n    retry: &r { max_attempts: 5, backoff: linear }\n  - name: b\n    handler: { name: h }\n    depends_on: [a]\n    retry: *r\n";
        let t = Template::from_yaml_str(text, "<inline>").expect("valid");
        assert_eq!(t.steps[1].retry, t.steps[0].retry);
        assert_eq!(t.steps[1].retry.max_attempts, 5);
    }

    /// `n` steps, each depending on every earlier one: n(n-1)/2 edges.
    fn dense(n: usize) -> String {
        let mut text = String::from("namespace: t\nname: dense\nversion: 1.0.0\nsteps:\n");
        for i in 0..n {
            let deps: Vec<String> = (0..i).map(|j| format!("s{j}")).collect();
            text.push_str(&format!(
                "  - {{ name: s{i}, handler: {{ name: h }}, depends_on: [{}] }}\n",
                deps.join(", ")
            ));
        }
        text
    }

    #[test]
    fn steps_and_edges_are_capped_in_yaml_and_json() {
        let defaults = TemplateLimits::default();
        // The finding: 800 steps, each depending on all earlier ones.
        // Its YAML is 1.9 MB, over max_bytes; with room for it, max_edges
        // refuses it.
        let text = dense(800);
        let err = Template::from_yaml_str(&text, "<dense>").expect_err("dense");
        assert_eq!(err.limit(), Some("templates.max_bytes"));
        let roomy = TemplateLimits {
            max_bytes: 16 << 20,
            ..TemplateLimits::default()
        };
        let started = Instant::now();
        let err = Template::from_yaml_str_with(&text, "<dense>", &roomy).expect_err("dense");
        assert_eq!(err.limit(), Some("templates.max_edges"));
        assert_eq!(
            err.to_string(),
            "<dense>: template has 319600 dependencies (depends_on entries): \
             over the limit templates.max_edges = 5000"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // 100 steps: 4,950 edges, within the caps.
        let t = Template::from_yaml_str(&dense(100), "<dense>").expect("at most 5000 edges");
        t.check_limits(&defaults).expect("within");
        let mut chain = String::from("namespace: t\nname: chain\nversion: 1.0.0\nsteps:\n");
        for i in 0..=defaults.max_steps {
            chain.push_str(&format!("  - {{ name: s{i}, handler: {{ name: h }} }}\n"));
        }
        let err = Template::from_yaml_str(&chain, "<many>").expect_err("many");
        assert_eq!(err.limit(), Some("templates.max_steps"));
        assert!(err.to_string().contains("template has 1001 steps"), "{err}");

        let json = serde_json::to_value(&t).expect("json");
        let tight = TemplateLimits {
            max_edges: 4_949,
            ..TemplateLimits::default()
        };
        let err = Template::from_json_value_with(json.clone(), &tight).expect_err("edges");
        assert_eq!(err.limit(), Some("templates.max_edges"));
        Template::from_json_value(json).expect("stored definitions are not capped");
    }

    #[test]
    fn syntax_errors_are_left_to_the_deserializer() {
        let shape = scan_yaml("a: [unclosed\n", &TemplateLimits::default()).expect("no limit");
        assert_eq!(shape.depth, 2);
        let msg = Template::from_yaml_str("namespace: [unclosed\n", "bad.yaml")
            .expect_err("broken")
            .to_string();
        assert!(msg.contains("invalid template YAML"), "{msg}");
    }

    #[test]
    fn json_depth_skips_strings() {
        assert_eq!(json_depth(br#"{"a": [1, {"b": "[[[[{{"}]}"#, 64), 3);
        assert_eq!(json_depth(br#"["\"[", [[]]]"#, 64), 3);
        assert_eq!(json_depth(&b"[".repeat(1_000_000), 64), 65);
        let limits = small();
        let err = scan_json(&b"[".repeat(9), &limits).expect_err("deep");
        assert_eq!(limit_of(&err), "templates.max_depth");
        assert_eq!(value_depth(&serde_json::json!({"a": [[1]], "b": {}})), 3);
        assert_eq!(value_depth(&serde_json::json!(1)), 0);
    }
}
