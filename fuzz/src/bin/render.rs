//! Fuzz target: see nepho::fuzzing::render_one.
fn main() {
    // On tmpfs when there is one: every input is written to a file first.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let fixture = nepho::fuzzing::RenderFixture::new(dir.path());
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::render_one(data, &fixture));
}
