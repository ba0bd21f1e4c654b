// mimalloc: the group-commit writer allocates and frees many small buffers per operation, and
// measured ~20% of its time in glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    duet::cli::tune_process();
    duet::cli::main()
}
