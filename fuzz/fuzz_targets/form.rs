//! `application/x-www-form-urlencoded` bodies: `Form::parse`, `Form::get` and
//! `form::decode`.
//!
//! Beyond "never panics", it checks the documented contract:
//! - `decode` fails only with `BadPercentEncoding` (and then the input has a `%`)
//!   or `NotUtf8`, never grows its input, and returns an input free of `%` and `+`
//!   unchanged;
//! - `parse` fails with `TooMany` exactly when the body has more than
//!   `MAX_PARAMS` non-empty `&`-separated parts;
//! - `get` never yields an empty value, and fails only with `Repeated(name)`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_endpoint::internals::{Form, FormError, MAX_PARAMS, decode};

/// The parameters the endpoint reads.
const NAMES: [&str; 10] = [
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "assertion",
    "token",
    "token_type_hint",
    "",
];

fn check_get(form: &Form, name: &str) {
    match form.get(name) {
        Ok(Some(value)) => {
            assert!(!value.is_empty(), "get({name:?}) returned an empty value");
            assert!(form.contains(name));
        }
        Ok(None) => {}
        Err(FormError::Repeated(repeated)) => {
            assert_eq!(repeated, name);
            assert!(form.contains(name));
        }
        Err(other) => panic!("get({name:?}) failed with {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|b| *b == b'&').filter(|p| !p.is_empty()).collect();
    match Form::parse(data) {
        Ok(form) => {
            assert!(parts.len() <= MAX_PARAMS);
            for name in NAMES {
                check_get(&form, name);
            }
            // The names the body itself uses, so that `Repeated` is reached too.
            for part in parts.iter().take(8) {
                let name = part.split(|b| *b == b'=').next().unwrap_or_default();
                let name = decode(name).expect("a parsed form's names decode");
                assert!(form.contains(&name));
                check_get(&form, &name);
            }
        }
        Err(FormError::TooMany) => assert!(parts.len() > MAX_PARAMS),
        Err(FormError::BadPercentEncoding) => assert!(data.contains(&b'%')),
        Err(FormError::NotUtf8) => {}
        Err(other) => panic!("parse failed with {other:?}"),
    }

    match decode(data) {
        Ok(decoded) => {
            assert!(decoded.len() <= data.len());
            if !data.iter().any(|b| matches!(b, b'%' | b'+')) {
                assert_eq!(decoded.as_bytes(), data);
            }
        }
        Err(FormError::BadPercentEncoding) => assert!(data.contains(&b'%')),
        Err(FormError::NotUtf8) => {}
        Err(other) => panic!("decode failed with {other:?}"),
    }
});
