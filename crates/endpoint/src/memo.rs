//! A thread's memory of the last text it turned into a value: a client sends the
//! same client ID and the same scope list with every request, so the work of turning
//! them into values is done once per thread while they repeat.

use std::cell::RefCell;
use std::thread::LocalKey;

/// What a thread made last: the text and its value.
pub(crate) type Last<T> = RefCell<Option<(String, T)>>;

/// `make(text)`, or a clone of what `make` gave for the same text last on this thread
/// (`last`). A failure is not remembered: it is made again each time.
pub(crate) fn remembered<T: Clone, E>(
    last: &'static LocalKey<Last<T>>,
    text: &str,
    make: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, E> {
    let held = last.with_borrow(|last| {
        last.as_ref().filter(|(held, _)| held == text).map(|(_, value)| value.clone())
    });
    if let Some(value) = held {
        return Ok(value);
    }
    let value = make(text)?;
    last.with_borrow_mut(|last| match last {
        Some((held, kept)) => {
            held.clear();
            held.push_str(text);
            kept.clone_from(&value);
        }
        None => *last = Some((text.to_owned(), value.clone())),
    });
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static LAST_LENGTH: Last<usize> = const { RefCell::new(None) };
    }

    #[test]
    fn the_same_text_is_made_once_and_failures_every_time() {
        let made = std::cell::Cell::new(0);
        let length = |text: &str| -> Result<usize, String> {
            made.set(made.get() + 1);
            if text.is_empty() { Err("empty".into()) } else { Ok(text.len()) }
        };
        let texts = ["abc", "abc", "de", "", "", "de", "abc", "abc"];
        let got: Vec<_> = texts.iter().map(|t| remembered(&LAST_LENGTH, t, length)).collect();
        let expected: Vec<Result<usize, String>> = vec![
            Ok(3),
            Ok(3),
            Ok(2),
            Err("empty".into()),
            Err("empty".into()),
            Ok(2),
            Ok(3),
            Ok(3),
        ];
        assert_eq!(got, expected);
        // abc, de, the two failures, abc again; each repeat of the last success is kept.
        assert_eq!(made.get(), 5);
    }
}
