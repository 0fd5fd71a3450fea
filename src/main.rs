use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    roster::cli::run().await
}
