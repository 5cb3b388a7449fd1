//! Micro-benchmarks (`cargo bench -p proxymapd`): codec decode and encode per
//! request, registry dispatch for an open table, and lookups (hit and miss)
//! on 100,000-key texthash, lmdb, hash and btree tables (the lmdb and
//! Berkeley DB files are built by Postfix's postmap, as in production), and
//! the Berkeley DB reader alone (no lock, no folding) on the hash file.

use criterion::{criterion_group, criterion_main, Criterion};
use proxymapd::codec::attr::Decoded;
use proxymapd::codec::{request, FrameDecoder, Limits, Reply, RequestKind, Status};
use proxymapd::dict::MapTypes;
use proxymapd::flags;
use proxymapd::registry::Registry;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;

const ENTRIES: usize = 100_000;
const FLAGS: u32 = flags::LOCK | flags::FOLD_FIX;

fn lookup_frame() -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in [
        ("request", "lookup"),
        ("table", "lmdb:/etc/postfix/virtual"),
        ("flags", "16448"),
        ("key", "user4711@example.com"),
    ] {
        proxymapd::codec::attr::encode_attr(&mut out, n, v.as_bytes());
    }
    proxymapd::codec::attr::end_frame(&mut out);
    out
}

fn codec(c: &mut Criterion) {
    let wire = lookup_frame();
    let mut decoder = FrameDecoder::new(Limits::default());
    c.bench_function("codec/decode+parse lookup", |b| {
        b.iter(|| {
            let (_, out) = decoder.feed(black_box(&wire));
            match out {
                Some(Decoded::Frame(frame)) => black_box(request::parse(&frame).unwrap()),
                _ => unreachable!(),
            }
        })
    });
    let mut reply = Reply::status(Some(RequestKind::Lookup), false, Status::Ok);
    reply.value = b"mailbox-4711@dest.example.net".to_vec();
    let mut out = Vec::with_capacity(128);
    c.bench_function("codec/encode lookup reply", |b| {
        b.iter(|| {
            out.clear();
            black_box(&reply).encode(&mut out);
            black_box(out.len())
        })
    });
}

fn write_source(dir: &Path) {
    let mut text = String::new();
    for i in 0..ENTRIES {
        text.push_str(&format!(
            "user{i}@example.com mailbox-{i}@dest.example.net\n"
        ));
    }
    std::fs::write(dir.join("virtual"), text).unwrap();
}

fn tables(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    let virt = dir.path().join("virtual");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("main.cf"), "compatibility_level = 3.6\n").unwrap();
    let btree_source = dir.path().join("virtual_btree");
    std::fs::copy(&virt, &btree_source).unwrap();
    for table in [
        format!("lmdb:{}", virt.display()),
        format!("hash:{}", virt.display()),
        format!("btree:{}", btree_source.display()),
    ] {
        let built = Command::new("postmap")
            .arg("-c")
            .arg(&etc)
            .arg(&table)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            built,
            "postmap is needed to build {table} (tests/install-deps.sh installs it)"
        );
    }
    let db_bytes = std::fs::read(dir.path().join("virtual.db")).unwrap();
    let db = proxymapd_bdb::Db::open(db_bytes.as_slice()).unwrap();
    c.bench_function("bdb reader/hash get hit (100k, no lock)", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % ENTRIES;
            let key = format!("user{i}@example.com\0");
            black_box(db.get(key.as_bytes()).unwrap().unwrap().len())
        })
    });
    let types = MapTypes::builtin();
    for map_type in ["texthash", "lmdb", "hash", "btree"] {
        let file = if map_type == "btree" {
            &btree_source
        } else {
            &virt
        };
        let table = format!("{map_type}:{}", file.display());
        let dict = types.open(&table, FLAGS, false, false).unwrap();
        c.bench_function(&format!("{map_type}/lookup hit (100k)"), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 7919) % ENTRIES;
                let key = format!("user{i}@example.com");
                black_box(dict.lookup(key.as_bytes(), FLAGS).unwrap().unwrap())
            })
        });
        c.bench_function(&format!("{map_type}/lookup miss (100k)"), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 7919) % ENTRIES;
                let key = format!("nobody{i}@example.com");
                black_box(dict.lookup(key.as_bytes(), FLAGS).unwrap())
            })
        });
    }
    let registry = Registry::new(MapTypes::builtin(), false);
    let table = format!("texthash:{}", virt.display());
    registry.acquire(&table, FLAGS, false).unwrap();
    c.bench_function("registry/dispatch to an open table", |b| {
        b.iter(|| black_box(registry.ready(black_box(&table), FLAGS, false).is_some()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = codec, tables
}
criterion_main!(benches);
