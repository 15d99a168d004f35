fn main() {
    std::process::exit(spate::cli::main());
}
