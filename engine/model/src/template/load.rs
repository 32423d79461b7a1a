//! Reading templates from files and directories.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Template, TemplateError, TemplateLimits};

/// Reads and validates one template file within the default [`TemplateLimits`];
/// errors name the file.
pub fn load_file(path: &Path) -> Result<Template, TemplateError> {
    load_file_with(path, &TemplateLimits::default())
}

/// Reads and validates one template file within `limits`; errors name the
/// file. A file over `max_bytes` is refused after reading `max_bytes + 1` bytes.
pub fn load_file_with(path: &Path, limits: &TemplateLimits) -> Result<Template, TemplateError> {
    let io = |source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limits.max_bytes).unwrap_or(u64::MAX);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let source = path.display().to_string();
    limits
        .check_size(bytes.len())
        .map_err(|e| e.in_file(source.as_str()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8: {e}"),
        ))
    })?;
    Template::from_yaml_str_with(&text, &source, limits)
}

/// [`load_paths_with`] within the default [`TemplateLimits`].
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Template>, TemplateError> {
    load_paths_with(paths, &TemplateLimits::default())
}

/// Loads every template named by `paths` within `limits`: a file is read
/// whatever its extension, a directory is searched recursively for `*.yaml` /
/// `*.yml` files (sorted by path; symbolic links to directories are not
/// followed). Stops at the first bad file. Two files defining the same
/// `namespace/name/version` is an error naming both.
pub fn load_paths_with(
    paths: &[PathBuf],
    limits: &TemplateLimits,
) -> Result<Vec<Template>, TemplateError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|source| TemplateError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            collect_yaml(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut templates = Vec::with_capacity(files.len());
    for file in files {
        if seen.values().any(|f| f == &file) {
            continue; // the same file named twice, e.g. directly and through its directory
        }
        let template = load_file_with(&file, limits)?;
        if let Some(first) = seen.get(&template.key()) {
            return Err(TemplateError::DuplicateTemplate {
                key: template.key(),
                first: first.clone(),
                second: file,
            });
        }
        seen.insert(template.key(), file);
        templates.push(template);
    }
    Ok(templates)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TemplateError> {
    let io = |source| TemplateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            collect_yaml(&path, out)?;
        } else if is_yaml(&path) && (kind.is_file() || path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::{load_file, load_paths};

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/templates")
    }

    fn small(namespace: &str, name: &str) -> String {
        format!(
            "namespace: {namespace}\nname: {name}\nversion: 1.0.0\nsteps:\n  - {{ name: a, handler: {{ name: h }} }}\n"
        )
    }

    #[test]
    fn loads_all_examples() {
        let templates = load_paths(&[examples_dir()]).expect("examples load");
        let mut keys: Vec<String> = templates.iter().map(|t| t.key()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "demo/diamond/1.0.0",
                "demo/linear/1.0.0",
                "demo/mixed_dag/1.0.0",
                "demo/tree/1.0.0",
                "ecommerce/order_fulfillment/1.0.0",
            ]
        );
    }

    #[test]
    fn each_example_file_loads() {
        for file in [
            "linear",
            "diamond",
            "tree",
            "mixed_dag",
            "order_fulfillment",
        ] {
            let path = examples_dir().join(format!("{file}.yaml"));
            let t = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.name, file);
        }
    }

    #[test]
    fn searches_recursively_in_order_and_skips_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        fs::write(dir.path().join("sub/b.yml"), small("ns", "b")).expect("write");
        fs::write(dir.path().join("a.yaml"), small("ns", "a")).expect("write");
        fs::write(dir.path().join("notes.txt"), "not yaml: [").expect("write");
        let names: Vec<String> = load_paths(&[dir.path().to_path_buf()])
            .expect("load")
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn duplicate_template_names_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("one.yaml");
        let second = dir.path().join("two.yaml");
        fs::write(&first, small("ns", "same")).expect("write");
        fs::write(&second, small("ns", "same")).expect("write");
        let msg = load_paths(&[dir.path().to_path_buf()])
            .expect_err("duplicate")
            .to_string();
        assert_eq!(
            msg,
            format!(
                "duplicate template `ns/same/1.0.0`: defined in both {} and {}",
                first.display(),
                second.display()
            )
        );
    }

    #[test]
    fn bad_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("good.yaml"), small("ns", "good")).expect("write");
        let bad = dir.path().join("zbad.yaml");
        fs::write(&bad, small("Ns", "bad")).expect("write");
        let msg = load_paths(&[dir.path().to_path_buf()])
            .expect_err("bad file")
            .to_string();
        assert!(
            msg.starts_with(&format!("{}: bad namespace `Ns`", bad.display())),
            "{msg}"
        );
    }

    #[test]
    fn a_file_over_max_bytes_is_refused_naming_file_and_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.yaml");
        let mut text = small("ns", "big");
        text.push_str(&format!("description: \"{}\"\n", "x".repeat(2_000)));
        fs::write(&big, &text).expect("write");
        let limits = crate::template::TemplateLimits {
            max_bytes: 1_000,
            ..Default::default()
        };
        let err = super::load_paths_with(std::slice::from_ref(&big), &limits).expect_err("too big");
        assert_eq!(err.limit(), Some("templates.max_bytes"));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: template text is 1001 bytes: over the limit templates.max_bytes = 1000",
                big.display()
            )
        );
        load_file(&big).expect("within the default limit");
    }

    #[test]
    fn missing_path_is_an_io_error() {
        let msg = load_paths(&[PathBuf::from("/nonexistent/templates")])
            .expect_err("missing")
            .to_string();
        assert!(
            msg.starts_with("cannot read /nonexistent/templates"),
            "{msg}"
        );
    }
}

#[cfg(test)]
mod example_tests {
    use std::path::Path;

    use serde_json::json;

    use super::load_file;
    use crate::template::{Backoff, Template, TemplateError};

    fn example(name: &str) -> Template {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/templates")
            .join(format!("{name}.yaml"));
        load_file(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn levels(t: &Template) -> Vec<(&str, usize)> {
        t.levels()
            .iter()
            .map(|(n, l)| (t.step(n).map_or("?", |s| s.name.as_str()), *l))
            .collect()
    }

    #[test]
    fn example_levels() {
        let linear = example("linear");
        assert_eq!(levels(&linear), [("a", 0), ("b", 1), ("c", 2), ("d", 3)]);
        let diamond = example("diamond");
        assert_eq!(
            levels(&diamond),
            [("start", 0), ("left", 1), ("right", 1), ("join", 2)]
        );
        let tree = example("tree");
        assert_eq!(tree.steps.len(), 7);
        assert_eq!(
            levels(&tree),
            [
                ("root", 0),
                ("branch_a", 1),
                ("branch_b", 1),
                ("leaf_a1", 2),
                ("leaf_a2", 2),
                ("leaf_b1", 2),
                ("leaf_b2", 2)
            ]
        );
        let mixed = example("mixed_dag");
        assert_eq!(mixed.steps.len(), 7);
        assert_eq!(
            levels(&mixed),
            [
                ("init", 0),
                ("b", 1),
                ("c", 1),
                ("d", 2),
                ("e", 2),
                ("f", 3),
                ("finish", 4)
            ]
        );
        let order = example("order_fulfillment");
        assert_eq!(
            levels(&order),
            [
                ("validate_order", 0),
                ("reserve_inventory", 1),
                ("charge_payment", 1),
                ("ship_order", 2),
                ("send_confirmation", 3)
            ]
        );
    }

    #[test]
    fn order_fulfillment_retry_and_timeout() {
        let order = example("order_fulfillment");
        let charge = order.step("charge_payment").expect("charge_payment");
        assert_eq!(charge.retry.max_attempts, 5);
        assert_eq!(charge.retry.backoff, Backoff::Exponential);
        assert_eq!((charge.retry.base_ms, charge.retry.max_ms), (50, 2000));
        assert!(charge.retry.jitter);
        assert_eq!(charge.timeout_seconds, 10);
        assert_eq!(
            order.step("ship_order").map(|s| s.timeout_seconds),
            Some(30)
        );
    }

    #[test]
    fn order_input_is_checked() {
        let order = example("order_fulfillment");
        let good = json!({
            "order_id": "ord-1",
            "customer_email": "a@example.com",
            "items": [{"sku": "SKU-1", "quantity": 2, "price_cents": 1999}]
        });
        order.validate_input(&good).expect("good order");

        let mut missing = good.clone();
        missing.as_object_mut().map(|o| o.remove("order_id"));
        let msg = order
            .validate_input(&missing)
            .expect_err("missing")
            .to_string();
        assert!(msg.contains("\"order_id\" is a required property"), "{msg}");

        let mut wrong = good.clone();
        wrong["items"][0]["quantity"] = json!("two");
        wrong["order_id"] = json!(17);
        let err = order.validate_input(&wrong).expect_err("wrong types");
        let TemplateError::InputRejected { violations } = &err else {
            panic!("unexpected error {err}");
        };
        assert!(
            violations.contains(&"/order_id: 17 is not of type \"string\"".to_string()),
            "{violations:?}"
        );
        assert!(
            violations
                .contains(&"/items/0/quantity: \"two\" is not of type \"integer\"".to_string()),
            "{violations:?}"
        );

        let empty = json!({"order_id": "o", "customer_email": "e", "items": []});
        let msg = order
            .validate_input(&empty)
            .expect_err("no items")
            .to_string();
        assert!(msg.contains("/items:"), "{msg}");
    }

    #[test]
    fn linear_input_bounds() {
        let linear = example("linear");
        linear.validate_input(&json!({"value": 3})).expect("ok");
        let msg = linear
            .validate_input(&json!({"value": 1001}))
            .expect_err("too big")
            .to_string();
        assert!(
            msg.contains("/value: 1001 is greater than the maximum of 1000"),
            "{msg}"
        );
    }
}
