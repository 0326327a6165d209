fn main() {
    std::process::exit(nepho::cli::main());
}
