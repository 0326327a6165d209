//! Fuzz target: see nepho::fuzzing::render.
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = nepho::fuzzing::RenderFixture::new(dir.path());
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::render(data, &fixture));
}
