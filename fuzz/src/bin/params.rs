//! Fuzz target: see nepho::fuzzing::params.
fn main() {
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::params(data));
}
