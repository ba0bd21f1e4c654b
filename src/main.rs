fn main() -> std::process::ExitCode {
    duet::cli::main()
}
