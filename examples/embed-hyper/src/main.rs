//! Run with: `cargo run -p tessera-example-embed`
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // an example that tells its user what to run

use tessera_example_embed::{serve, tessera};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tessera, secret) = tessera(&base).await?;
    tokio::spawn(tessera.maintenance());
    println!("listening on {base}");
    println!(
        "try: curl -s -u 'reporting-job:{}' -d grant_type=client_credentials {base}/oauth/v2/token",
        secret.expose()
    );
    println!("then: curl -s -H \"Authorization: Bearer $TOKEN\" {base}/api/hello");
    serve(listener, tessera).await?;
    Ok(())
}
