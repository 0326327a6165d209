//! Fuzz target: see nepho::fuzzing::journal.
fn main() {
    // On tmpfs when there is one: every input is written to a file first.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let path = dir.path().join("journal");
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::journal(data, &path));
}
