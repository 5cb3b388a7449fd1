//! The guest side: WIT bindings for the `plugin` world, the adapter from
//! [`MapType`] to the exported `dict` interface, host logging and file
//! access, and the [`export_map_type!`] macro.

use crate::{Error, MapType, OpenRequest, SeqStep};
use std::marker::PhantomData;

/// Generated bindings of `wit/dict.wit` (world `plugin`).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "proxymapd_sdk::bindings",
    });
}

use bindings::exports::proxymapd::dict::dict as wit;
use bindings::proxymapd::dict::host;

/// Read file `index` of the table being opened (see [`OpenRequest::files`]).
pub fn read_file(index: u32) -> Result<Vec<u8>, String> {
    host::read_file(index)
}

/// The size of file `index` of the table.
pub fn file_size(index: u32) -> Result<u64, String> {
    host::file_size(index)
}

/// Up to `length` bytes of file `index` from `offset` (fewer at its end).
/// Large tables should read what a lookup needs with this instead of
/// copying the whole file into the plugin with [`read_file`].
pub fn read_at(index: u32, offset: u64, length: u32) -> Result<Vec<u8>, String> {
    host::read_at(index, offset, length)
}

/// The table's first granted file — its path, for messages, and its size —
/// for map types that read one file piece by piece with [`read_at`].
pub fn granted_file(request: &crate::OpenRequest) -> Result<(String, u64), crate::Error> {
    let path = request
        .files
        .first()
        .cloned()
        .ok_or_else(|| crate::Error::Config("no table file was granted".into()))?;
    let size =
        file_size(0).map_err(|e| crate::Error::Config(format!("open database {path}: {e}")))?;
    Ok((path, size))
}

/// Statements on the database the table's configuration names (SQL map
/// types; the plugin's manifest says `database = "sqlite"`, `"pgsql"`,
/// `"mysql"` or `"by-map-type"`). The host owns the connections and escapes
/// [`sql::Piece::Escaped`] values for them; [`sql::domain_lookup`] looks a
/// domain up in a table the configuration's `domain` list names.
pub mod sql {
    pub use super::bindings::proxymapd::dict::sql::{domain_lookup, query, Piece, Rows, SqlError};
}

/// Log through proxymapd, attributed to the plugin and table.
pub mod log {
    use super::host::{log, Level};

    /// An error line.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
    /// A warning line.
    pub fn warning(message: &str) {
        log(Level::Warning, message)
    }
    /// An informational line.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    /// A debug line.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
}

/// The exported plugin for map type `T` (used by [`export_map_type!`]).
#[doc(hidden)]
pub struct Plugin<T>(PhantomData<T>);

/// One open table of map type `T`.
#[doc(hidden)]
pub struct TableOf<T>(T);

fn to_wit(err: Error) -> wit::Error {
    match err {
        Error::Retry(m) => wit::Error::Retry(m),
        Error::Config(m) => wit::Error::Config(m),
    }
}

impl<T: MapType> wit::Guest for Plugin<T> {
    type Table = TableOf<T>;
}

impl<T: MapType> wit::GuestTable for TableOf<T> {
    fn open(request: wit::OpenRequest) -> Result<wit::Table, wit::Error> {
        let request = OpenRequest {
            map_type: request.map_type,
            name: request.name,
            flags: request.flags,
            files: request.files,
            writable: request.writable,
            utf8: request.utf8,
        };
        T::open(&request)
            .map(|t| wit::Table::new(TableOf(t)))
            .map_err(to_wit)
    }

    fn flags(&self) -> u32 {
        self.0.flags()
    }

    fn lookup(&self, key: Vec<u8>, flags: u32) -> Result<Option<Vec<u8>>, wit::Error> {
        self.0.lookup(&key, flags).map_err(to_wit)
    }

    fn update(&self, key: Vec<u8>, value: Vec<u8>, flags: u32) -> Result<(), wit::Error> {
        self.0.update(&key, &value, flags).map_err(to_wit)
    }

    fn delete(&self, key: Vec<u8>, flags: u32) -> Result<bool, wit::Error> {
        self.0.delete(&key, flags).map_err(to_wit)
    }

    fn sequence(&self, step: wit::SeqStep, flags: u32) -> Result<Option<wit::Entry>, wit::Error> {
        let step = match step {
            wit::SeqStep::First => SeqStep::First,
            wit::SeqStep::Next => SeqStep::Next,
        };
        self.0
            .sequence(step, flags)
            .map(|e| e.map(|(key, value)| wit::Entry { key, value }))
            .map_err(to_wit)
    }
}

/// Export a [`MapType`] implementation as this component's map type.
#[macro_export]
macro_rules! export_map_type {
    ($t:ty) => {
        // Only WebAssembly builds export the component interface; native
        // builds of a plugin crate (for its unit tests) export nothing.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __proxymapd_export {
            #[allow(unused_imports)]
            use super::*;
            type __ProxymapdPluginExport = $crate::Plugin<$t>;
            $crate::bindings::export!(__ProxymapdPluginExport with_types_in $crate::bindings);
        }
    };
}
