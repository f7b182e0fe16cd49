//! The engine is sans-IO and deterministic. This scans its sources for the
//! ways code usually reaches the clock, threads, files, sockets, the
//! environment or unseeded randomness (clippy.toml forbids the calls; this
//! also catches paths clippy's list misses, such as `use` of whole modules).

// This test reads the engine's own sources; the file access is the test's,
// not the engine's.
#[allow(clippy::disallowed_methods)]
#[test]
fn engine_sources_touch_no_io_clock_or_entropy() {
    let forbidden = [
        "Instant::now",
        "SystemTime",
        "UNIX_EPOCH",
        "std::thread",
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "tokio",
        "thread_rng",
        "from_entropy",
        "OsRng",
        "rand::random",
        "RandomState",
        "std::collections::HashMap",
        "std::collections::HashSet",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root];
    let mut hits = vec![];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read engine/src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).expect("read source");
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in forbidden {
                    if code.contains(f) {
                        hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(files > 10, "scanned only {files} files");
    assert!(
        hits.is_empty(),
        "engine/ must stay pure:\n{}",
        hits.join("\n")
    );
}
