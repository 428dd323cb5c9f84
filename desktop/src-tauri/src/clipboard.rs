//! Copying a secret to the system clipboard, and taking it back.
//!
//! The value goes from the core straight to the clipboard: it never passes
//! through the web view. [`CLEAR_AFTER`] later, and at once when the app
//! locks or signs out, the clipboard is emptied — but only if it still holds
//! what zsm put there, so text the person copied since is left alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{AppError, AppResult};

/// How long a copied secret stays on the clipboard.
pub const CLEAR_AFTER: Duration = Duration::from_secs(30);

/// The system clipboard, as far as this app uses it.
pub trait Clipboard: Send + 'static {
    fn set_text(&mut self, text: &str) -> AppResult<()>;
    /// The clipboard's text, or None when it holds none.
    fn text(&mut self) -> Option<Zeroizing<String>>;
    fn clear(&mut self) -> AppResult<()>;
}

/// The real clipboard (X11 selections through arboard). Opened on first use,
/// because opening it needs the display; kept open, because on X11 the
/// process that owns the selection must stay alive to serve it.
#[derive(Default)]
pub struct SystemClipboard(Option<arboard::Clipboard>);

impl SystemClipboard {
    fn open(&mut self) -> AppResult<&mut arboard::Clipboard> {
        if self.0.is_none() {
            self.0 = Some(arboard::Clipboard::new().map_err(|e| AppError::Clipboard(e.to_string()))?);
        }
        Ok(self.0.as_mut().expect("opened above"))
    }
}

impl Clipboard for SystemClipboard {
    fn set_text(&mut self, text: &str) -> AppResult<()> {
        self.open()?
            .set_text(text)
            .map_err(|e| AppError::Clipboard(e.to_string()))
    }

    fn text(&mut self) -> Option<Zeroizing<String>> {
        self.open().ok()?.get_text().ok().map(Zeroizing::new)
    }

    fn clear(&mut self) -> AppResult<()> {
        self.open()?.clear().map_err(|e| AppError::Clipboard(e.to_string()))
    }
}

struct Held<C> {
    clipboard: C,
    /// What zsm last put on the clipboard, until it is cleared.
    copied: Option<Zeroizing<String>>,
    /// Bumped on every copy, so a timer only clears its own copy.
    generation: u64,
}

/// The clipboard plus what zsm put on it.
pub struct ClipboardGuard<C: Clipboard> {
    held: Arc<Mutex<Held<C>>>,
    clear_after: Duration,
}

impl<C: Clipboard> ClipboardGuard<C> {
    pub fn new(clipboard: C, clear_after: Duration) -> Self {
        ClipboardGuard {
            held: Arc::new(Mutex::new(Held {
                clipboard,
                copied: None,
                generation: 0,
            })),
            clear_after,
        }
    }

    pub fn clear_after(&self) -> Duration {
        self.clear_after
    }

    /// Puts value on the clipboard and schedules its removal.
    /// Must run inside the Tokio runtime (IPC commands do).
    pub fn copy(&self, value: Zeroizing<String>) -> AppResult<()> {
        let generation = {
            let mut h = self.held.lock().expect("clipboard lock poisoned");
            h.clipboard.set_text(&value)?;
            h.copied = Some(value);
            h.generation += 1;
            h.generation
        };
        let held = Arc::clone(&self.held);
        let after = self.clear_after;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut h = held.lock().expect("clipboard lock poisoned");
            if h.generation == generation {
                clear_if_ours(&mut h);
            }
        });
        Ok(())
    }

    /// Empties the clipboard now if it still holds what zsm copied (on lock
    /// and sign-out).
    pub fn clear_now(&self) {
        let mut h = self.held.lock().expect("clipboard lock poisoned");
        clear_if_ours(&mut h);
    }
}

fn clear_if_ours<C: Clipboard>(h: &mut Held<C>) {
    if let Some(copied) = h.copied.take() {
        let still_ours = h.clipboard.text().is_some_and(|t| *t == *copied);
        if still_ours {
            // Nothing to report to: a failure leaves the value there, as if
            // the person had copied it themselves.
            let _ = h.clipboard.clear();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clipboard in memory, shared with the test that inspects it.
    #[derive(Clone, Default)]
    pub struct MemoryClipboard(pub Arc<Mutex<Option<String>>>);

    impl Clipboard for MemoryClipboard {
        fn set_text(&mut self, text: &str) -> AppResult<()> {
            *self.0.lock().unwrap() = Some(text.to_owned());
            Ok(())
        }
        fn text(&mut self) -> Option<Zeroizing<String>> {
            self.0.lock().unwrap().clone().map(Zeroizing::new)
        }
        fn clear(&mut self) -> AppResult<()> {
            *self.0.lock().unwrap() = None;
            Ok(())
        }
    }

    fn contents(c: &MemoryClipboard) -> Option<String> {
        c.0.lock().unwrap().clone()
    }

    // The guard's delay is a parameter; these tests use a short one in real
    // time (the end-to-end test checks the 30 s of the app on the real
    // clipboard).
    const D: Duration = Duration::from_millis(400);

    #[test]
    fn the_app_clears_after_thirty_seconds() {
        assert_eq!(CLEAR_AFTER, Duration::from_secs(30));
    }

    #[test]
    fn cleared_after_the_delay_and_not_before() {
        crate::block_on(async {
            let mem = MemoryClipboard::default();
            let g = ClipboardGuard::new(mem.clone(), D);
            g.copy(Zeroizing::new("hunter2".into())).unwrap();
            assert_eq!(contents(&mem).as_deref(), Some("hunter2"));
            tokio::time::sleep(D / 2).await;
            assert_eq!(contents(&mem).as_deref(), Some("hunter2"), "cleared too early");
            tokio::time::sleep(D).await;
            assert_eq!(contents(&mem), None, "not cleared after {D:?}");
        });
    }

    #[test]
    fn leaves_what_the_person_copied_since() {
        crate::block_on(async {
            let mem = MemoryClipboard::default();
            let g = ClipboardGuard::new(mem.clone(), D);
            g.copy(Zeroizing::new("hunter2".into())).unwrap();
            mem.clone().set_text("their own text").unwrap();
            tokio::time::sleep(D * 2).await;
            assert_eq!(contents(&mem).as_deref(), Some("their own text"));
        });
    }

    #[test]
    fn a_second_copy_gets_its_own_full_delay() {
        crate::block_on(async {
            let mem = MemoryClipboard::default();
            let g = ClipboardGuard::new(mem.clone(), D);
            g.copy(Zeroizing::new("first".into())).unwrap();
            tokio::time::sleep(D * 3 / 4).await;
            g.copy(Zeroizing::new("second".into())).unwrap();
            tokio::time::sleep(D / 2).await;
            assert_eq!(
                contents(&mem).as_deref(),
                Some("second"),
                "the first timer cleared the second copy"
            );
            tokio::time::sleep(D).await;
            assert_eq!(contents(&mem), None);
        });
    }

    #[test]
    fn clear_now_empties_only_our_copy() {
        crate::block_on(async {
            let mem = MemoryClipboard::default();
            let g = ClipboardGuard::new(mem.clone(), D);
            g.copy(Zeroizing::new("hunter2".into())).unwrap();
            g.clear_now();
            assert_eq!(contents(&mem), None);
            mem.clone().set_text("theirs").unwrap();
            g.clear_now();
            assert_eq!(contents(&mem).as_deref(), Some("theirs"));
        });
    }
}
