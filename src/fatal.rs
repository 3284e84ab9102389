//! A thread that panics must not leave a half-dead server: one UDP worker gone, the control
//! loop stopped, while `/readyz` still says ready. The hook here turns any panic, on any thread
//! or task, into: an ERROR line naming the thread and the place, `/readyz` 503 at once, an
//! orderly stop, and a non-zero exit, so that systemd (or whatever supervises weiche) restarts it.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::error;

static FAILED: OnceLock<String> = OnceLock::new();
static STOP: Notify = Notify::const_new();

/// Installs the hook. `exit_after`: if stopping in order takes longer than this, the process
/// exits at once with status 70 (EX_SOFTWARE), for a runtime too broken to stop.
pub fn install_panic_hook(exit_after: Option<Duration>) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        error!(thread, at = %place, panic = %msg, "a thread of weiche panicked; stopping so that it is restarted whole");
        report(format!("thread {thread} panicked at {place}: {msg}"));
        if let Some(after) = exit_after {
            let _ = std::thread::Builder::new().name("exit-watchdog".into()).spawn(move || {
                std::thread::sleep(after);
                error!("did not stop within {after:?} after a panic; exiting now");
                std::process::exit(70);
            });
        }
        default(info);
    }));
}

/// Records that the server cannot go on (the first reason is kept) and asks it to stop.
pub fn report(reason: String) {
    let _ = FAILED.set(reason);
    STOP.notify_one();
}

/// Why the server must stop, once something failed.
pub fn failed() -> Option<&'static str> {
    FAILED.get().map(String::as_str)
}

/// Completes once [`report`] was called (also if that was before).
pub async fn stopped() {
    if failed().is_some() {
        return;
    }
    STOP.notified().await;
}
