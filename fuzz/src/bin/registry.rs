//! Fuzz target: see nepho::fuzzing::registry.
fn main() {
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::registry(data));
}
