//! Documents read in reader processes: a reader that crashes or hangs costs
//! its document only, is replaced for the next one, and runs with its
//! memory limited. A stand-in reader speaks the protocol and misbehaves on
//! cue, so every path is exercised for real, processes and signals included.

use std::path::Path;
use std::time::{Duration, Instant};

use clerk::documents::{DocumentError, ReadOptions, isolation, read_file};

#[test]
fn crashes_and_hangs_cost_one_document_and_the_reader_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("reader.sh");
    let limit_file = dir.path().join("limit");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile read -r line; do\n  case \"$line\" in\n    *crash*) kill -9 $$ ;;\n    *hang*) sleep 30 ;;\n    *) ulimit -v > {} ; echo '{{\"err\":\"Empty\"}}' ;;\n  esac\ndone\n",
            limit_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    isolation::use_reader_executable(script.clone());

    let limits = ReadOptions {
        timeout: Duration::from_millis(300),
        max_memory: 512 * 1024 * 1024,
        ..ReadOptions::default()
    };
    let read = |name: &str| read_file(Path::new(name), &limits);

    assert_eq!(read("ok-1.pdf"), Err(DocumentError::Empty));
    let crashed = read("crash.pdf").unwrap_err();
    assert!(
        matches!(&crashed, DocumentError::ReaderCrashed(m) if m.contains("signal 9") && m.contains("512 MiB")),
        "{crashed:?}"
    );
    // A new reader takes the next document.
    assert_eq!(read("ok-2.pdf"), Err(DocumentError::Empty));

    let started = Instant::now();
    assert_eq!(
        read("hang.pdf"),
        Err(DocumentError::TimedOut(limits.timeout))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the hung reader was not stopped"
    );
    assert_eq!(read("ok-3.pdf"), Err(DocumentError::Empty));

    // Readers run with their address space limited (ulimit -v is in KiB).
    let limit = std::fs::read_to_string(&limit_file).unwrap();
    assert_eq!(limit.trim(), "524288");
}
