//! The `tasker:handler@0.1.0` contract as the host sees it: the generated
//! bindings, the contract's version and export, which imports a component may
//! have, and how component bytes are told from a core module.

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk-wit/wit",
        world: "step-handler",
    });
}

/// The contract version this host implements (the WIT package version).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The contract's export a component must provide.
pub const HANDLER_EXPORT: &str = "tasker:handler/handler@0.1.0";

/// Whether an import name is allowed: the contract's `log` and `trace`
/// (0.1.x; a component may import either, both or neither) and the
/// WASI 0.2 interfaces language runtimes import (`io`, `clocks`, `random`,
/// `cli`, `filesystem`, `sockets`). WASI is linked but grants nothing: no
/// preopened directories, no network, no environment, no arguments, empty stdin.
pub fn allowed_import(name: &str) -> bool {
    for contract in ["tasker:handler/log@", "tasker:handler/trace@"] {
        if let Some(v) = name.strip_prefix(contract) {
            return v.starts_with("0.1.");
        }
    }
    let Some(rest) = name.strip_prefix("wasi:") else {
        return false;
    };
    let Some((package, versioned)) = rest.split_once('/') else {
        return false;
    };
    let Some((_, version)) = versioned.split_once('@') else {
        return false;
    };
    matches!(
        package,
        "io" | "clocks" | "random" | "cli" | "filesystem" | "sockets"
    ) && version.starts_with("0.2.")
}

/// Whether `bytes` start with the component-model preamble (layer 1), as
/// opposed to a core module (layer 0).
pub(crate) fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_allow_list() {
        assert!(allowed_import("tasker:handler/log@0.1.0"));
        assert!(allowed_import("tasker:handler/log@0.1.3"));
        assert!(!allowed_import("tasker:handler/log@0.2.0"));
        assert!(allowed_import("tasker:handler/trace@0.1.0"));
        assert!(!allowed_import("tasker:handler/trace@0.2.0"));
        assert!(!allowed_import("tasker:handler/handler@0.1.0"));
        assert!(allowed_import("wasi:cli/environment@0.2.6"));
        assert!(allowed_import("wasi:io/streams@0.2.0"));
        assert!(!allowed_import("wasi:http/outgoing-handler@0.2.0"));
        assert!(!allowed_import("wasi:cli/environment@0.3.0"));
        assert!(!allowed_import("acme:exfil/net@0.1.0"));
        assert!(!allowed_import("env"));
    }
}
