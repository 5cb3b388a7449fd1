//! Build the C shim against libdb's header and link libdb, when the header
//! is there (Debian: libdb5.3-dev); otherwise set `proxymapd_no_libdb` so
//! the crate builds without them and refuses to open.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(proxymapd_no_libdb)");
    println!("cargo::rerun-if-changed=csrc/shim.c");
    println!("cargo::rerun-if-env-changed=PROXYMAPD_LIBDB_INCLUDE");
    let include =
        std::env::var("PROXYMAPD_LIBDB_INCLUDE").unwrap_or_else(|_| "/usr/include".into());
    if !Path::new(&include).join("db.h").exists() {
        println!("cargo::warning=db.h not found in {include}: built without Berkeley DB writing");
        println!("cargo::rustc-cfg=proxymapd_no_libdb");
        return;
    }
    cc::Build::new()
        .file("csrc/shim.c")
        .include(&include)
        .warnings(true)
        .compile("proxymapd_libdb_shim");
    println!("cargo::rustc-link-lib=db");
}
