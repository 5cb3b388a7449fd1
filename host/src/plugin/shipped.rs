//! The plugins carried inside the `proxymapd` binary: the map types built
//! from `plugins/` (cdb, cidr, regexp, pcre, hash and its alias btree,
//! sqlite and its aliases pgsql and mysql),
//! embedded from `host/shipped-plugins/`, where `sdk/ship-plugins.sh` writes
//! them. They are the last place the plugin host looks, so a plugin
//! directory adds to or overrides them; the test command rebuilds them from
//! the sources and fails when the committed files differ.

/// One map type carried in the binary.
pub(crate) struct ShippedPlugin {
    /// Map type name.
    pub(crate) name: &'static str,
    /// The component (stripped and optimised).
    pub(crate) wasm: &'static [u8],
    /// Its manifest (`NAME.toml`).
    pub(crate) manifest: &'static str,
}

/// `ShippedPlugin` for map type `$name` built from `$file.wasm`/`.toml`.
macro_rules! shipped {
    ($name:literal, $file:literal) => {
        ShippedPlugin {
            name: $name,
            wasm: include_bytes!(concat!("../../shipped-plugins/", $file, ".wasm")),
            manifest: include_str!(concat!("../../shipped-plugins/", $file, ".toml")),
        }
    };
}

/// Every shipped map type, by name.
pub(crate) const SHIPPED: &[ShippedPlugin] = &[
    shipped!("btree", "hash"),
    shipped!("cdb", "cdb"),
    shipped!("cidr", "cidr"),
    shipped!("hash", "hash"),
    shipped!("mysql", "sqlite"),
    shipped!("pcre", "pcre"),
    shipped!("pgsql", "sqlite"),
    shipped!("regexp", "regexp"),
    shipped!("sqlite", "sqlite"),
];

/// The shipped plugin for map type `name`.
pub(crate) fn find(name: &str) -> Option<&'static ShippedPlugin> {
    SHIPPED.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every plugin crate in `plugins/` (and each alias it lists) ships in
    /// the binary, with its own manifest, so a new map type cannot be left
    /// out by accident.
    #[test]
    fn every_plugin_crate_ships_with_its_manifest() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let mut expected = Vec::new();
        for entry in std::fs::read_dir(&root).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_str().unwrap().to_string();
            let manifest = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
            let aliases = std::fs::read_to_string(dir.join("aliases")).unwrap_or_default();
            for map_type in std::iter::once(name.as_str()).chain(aliases.split_whitespace()) {
                let shipped = find(map_type)
                    .unwrap_or_else(|| panic!("plugins/{name} ({map_type}) is not shipped"));
                assert_eq!(shipped.manifest, manifest, "manifest of {map_type}");
                expected.push(map_type.to_string());
            }
        }
        expected.sort();
        let shipped: Vec<&str> = SHIPPED.iter().map(|p| p.name).collect();
        assert_eq!(shipped, expected);
    }

    /// Shipped plugins are components, stripped to the size budget.
    #[test]
    fn shipped_plugins_are_small_components() {
        for p in SHIPPED {
            assert!(
                super::super::componentize::is_component(p.wasm),
                "{}",
                p.name
            );
            assert!(
                p.wasm.len() <= 1 << 20,
                "{}: {} bytes",
                p.name,
                p.wasm.len()
            );
        }
    }
}
