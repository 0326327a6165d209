//! Fuzz target: see nepho::fuzzing::render_one.
fn main() {
    // On tmpfs when there is one: every input is written to a file first.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let fixture = nepho::fuzzing::RenderFixture::new(dir.path());
    // Every input in milliseconds: running out of budget is the same code at 200k steps as at
    // the production 20M (templates that looped to the full budget took 0.4 s each).
    nepho::scenario::render::lower_fuel(200_000);
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::render_one(data, &fixture));
}
