//! The protected API as a program.
//!
//! Run with: `cargo run -p protect-axum`, with these environment variables:
//!
//! - `ISSUER`: the issuer URL (default `http://127.0.0.1:8080`, a local
//!   `tessera-server serve`);
//! - `PROJECT_ID`: the API's project id, its audience (`tessera-server project create`);
//! - `API_CLIENT_ID` and `API_CLIENT_SECRET` of an API app of the project
//!   (`tessera-server api-app create`), or `API_KEY_FILE`, its key file
//!   (`tessera-server api-app key add --json`), to introspect opaque tokens; without
//!   either, only JWTs are accepted;
//! - `LISTEN`: the address to serve at (default `127.0.0.1:3000`).
#![forbid(unsafe_code)]

use std::env;

use tessera_resource::{Authorizer, Credentials};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let issuer = env::var("ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let project = env::var("PROJECT_ID").map_err(|_| "set PROJECT_ID to the API's project id")?;
    let listen = env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let mut builder = Authorizer::builder(issuer).audience(&project);
    if let Ok(path) = env::var("API_KEY_FILE") {
        builder = builder.introspection(Credentials::key_file_path(path)?);
    } else if let (Ok(id), Ok(secret)) = (env::var("API_CLIENT_ID"), env::var("API_CLIENT_SECRET"))
    {
        builder = builder.introspection(Credentials::client_secret(id, secret));
    }
    let authorizer = builder.build()?;
    if authorizer.warm_up().await.is_err() {
        eprintln!("the issuer cannot be reached yet; requests will retry");
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, protect_axum::app(authorizer, &project)).await?;
    Ok(())
}
