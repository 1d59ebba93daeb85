//! `Authorization: Basic` values: `tessera_endpoint::internals::parse_basic`.
//!
//! Each input is tried twice:
//! 1. as the raw header value, which must parse or fail with `invalid_client`;
//! 2. as the decoded `id:secret` credentials, wrapped in `Basic <base64>` so that
//!    the fuzzer reaches the form-decoding of the ID and secret without having to
//!    produce valid base64 itself. The result is checked against a model: the ID
//!    and secret are `form::decode` of the parts around the first `:`, and the ID
//!    must not be empty.
#![no_main]

use base64ct::{Base64, Encoding};
use libfuzzer_sys::fuzz_target;
use tessera_endpoint::internals::{decode, parse_basic};
use tessera_endpoint::{AuthMethod, ErrorCode, MAX_AUTHORIZATION_LEN};

fuzz_target!(|data: &[u8]| {
    match parse_basic(data) {
        Ok(creds) => {
            assert!(data.len() <= MAX_AUTHORIZATION_LEN);
            assert_eq!(creds.method, AuthMethod::ClientSecretBasic);
            assert!(!creds.client_id.is_empty());
        }
        Err(error) => assert_eq!(error.code(), ErrorCode::InvalidClient),
    }

    let header = format!("Basic {}", Base64::encode_string(data));
    let result = parse_basic(header.as_bytes());
    if header.len() > MAX_AUTHORIZATION_LEN {
        assert_eq!(result.map_err(|e| e.code()), Err(ErrorCode::InvalidClient));
        return;
    }
    let expected = data.iter().position(|b| *b == b':').and_then(|colon| {
        let id = decode(&data[..colon]).ok()?;
        let secret = decode(&data[colon + 1..]).ok()?;
        (!id.is_empty()).then(|| (id.into_owned(), secret.into_owned()))
    });
    match (result, expected) {
        (Ok(creds), Some((id, secret))) => {
            assert_eq!(creds.client_id, id);
            assert_eq!(creds.secret.expose(), secret);
        }
        (Err(error), None) => assert_eq!(error.code(), ErrorCode::InvalidClient),
        (Ok(creds), None) => panic!("accepted {:?} for {data:?}", creds.client_id),
        (Err(error), Some(_)) => panic!("refused {data:?}: {error}"),
    }
});
