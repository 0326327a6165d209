//! Fuzz target: see nepho::fuzzing::yaml.
fn main() {
    afl::fuzz!(|data: &[u8]| nepho::fuzzing::yaml(data));
}
