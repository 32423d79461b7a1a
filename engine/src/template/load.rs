//! Reading templates from files and directories.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Template, TemplateError};

/// Reads and validates one template file; errors name the file.
pub fn load_file(path: &Path) -> Result<Template, TemplateError> {
    let text = fs::read_to_string(path).map_err(|source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Template::from_yaml_str(&text, &path.display().to_string())
}

/// Loads every template named by `paths`: a file is read whatever its extension, a
/// directory is searched recursively for `*.yaml` / `*.yml` files (sorted by path;
/// symbolic links to directories are not followed). Stops at the first bad file.
/// Two files defining the same `namespace/name/version` is an error naming both.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Template>, TemplateError> {
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
        let template = load_file(&file)?;
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
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templates")
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
        for file in ["linear", "diamond", "tree", "mixed_dag", "order_fulfillment"] {
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
        assert!(msg.starts_with(&format!("{}: bad namespace `Ns`", bad.display())), "{msg}");
    }

    #[test]
    fn missing_path_is_an_io_error() {
        let msg = load_paths(&[PathBuf::from("/nonexistent/templates")])
            .expect_err("missing")
            .to_string();
        assert!(msg.starts_with("cannot read /nonexistent/templates"), "{msg}");
    }
}
