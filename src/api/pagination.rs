//! Cursor pagination as a pure state machine: which cursor to send next, when a walk is over,
//! and when the API has handed back a cursor it already gave (a loop that would never end).
//! Cursors are opaque: they are sent back exactly as received, never computed.

use std::collections::HashSet;

/// The walk repeated a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedCursor {
    /// The cursor seen twice.
    pub cursor: String,
    /// Pages fetched before the repeat.
    pub pages: u64,
}

/// The state of one walk through `GET /v3/chats`.
#[derive(Debug, Default)]
pub struct CursorWalk {
    seen: HashSet<String>,
    next: Option<String>,
    pages: u64,
    done: bool,
}

impl CursorWalk {
    /// A walk that starts at the first page.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cursor for the next request (`None` for the first page).
    pub fn cursor(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// Whether the walk has reached its last page.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the walk has already been handed `cursor` (following it would repeat pages).
    pub fn has_seen(&self, cursor: &str) -> bool {
        self.seen.contains(cursor)
    }

    /// Pages seen so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Records a page with `chats` chats and its `next_cursor`. The walk ends at a null or empty
    /// cursor, or at an empty page.
    pub fn advance(
        &mut self,
        next_cursor: Option<String>,
        chats: usize,
    ) -> Result<(), RepeatedCursor> {
        self.pages += 1;
        match next_cursor {
            Some(c) if !c.is_empty() && chats > 0 => {
                if !self.seen.insert(c.clone()) {
                    self.done = true;
                    return Err(RepeatedCursor {
                        cursor: c,
                        pages: self.pages,
                    });
                }
                self.next = Some(c);
            }
            _ => {
                self.done = true;
                self.next = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_until_null_cursor() {
        let mut w = CursorWalk::new();
        assert_eq!(w.cursor(), None);
        w.advance(Some("a b/+".into()), 100).expect("ok");
        assert_eq!(w.cursor(), Some("a b/+"));
        w.advance(Some("c".into()), 100).expect("ok");
        assert!(!w.is_done());
        w.advance(None, 3).expect("ok");
        assert!(w.is_done());
        assert_eq!(w.pages(), 3);
    }

    #[test]
    fn empty_cursor_or_page_ends_the_walk() {
        let mut w = CursorWalk::new();
        w.advance(Some(String::new()), 10).expect("ok");
        assert!(w.is_done());
        let mut w = CursorWalk::new();
        w.advance(Some("next".into()), 0).expect("ok");
        assert!(w.is_done());
    }

    #[test]
    fn repeated_cursor_is_an_error() {
        let mut w = CursorWalk::new();
        w.advance(Some("x".into()), 1).expect("ok");
        w.advance(Some("y".into()), 1).expect("ok");
        let err = w.advance(Some("x".into()), 1).expect_err("loop");
        assert_eq!(
            err,
            RepeatedCursor {
                cursor: "x".into(),
                pages: 3
            }
        );
        assert!(w.is_done());
    }
}
