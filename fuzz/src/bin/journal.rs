//! Fuzz target: see nepho::fuzzing::journal.
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::journal(data, &path));
}
