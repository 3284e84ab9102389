//! A panic on any thread stops the whole server: `/readyz` turns 503 with the reason, the
//! listeners stop, and `serve` returns an error (the binary then exits non-zero, for systemd to
//! restart it). Its own test binary: the panic hook is process-wide.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_panicking_thread_stops_the_server_instead_of_leaving_it_half_dead() {
    weiche::fatal::install_panic_hook(None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.com.toml"), zone("")).unwrap();
    let mut config = weiche::Config::load(None).unwrap();
    config.zones_dir = dir.path().to_path_buf();
    let sockets = weiche::Sockets::bind(&["127.0.0.191:0".parse().unwrap()])
        .unwrap()
        .with_api("127.0.0.191:0".parse().unwrap())
        .unwrap();
    let api = sockets.api.as_ref().unwrap().local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(weiche::serve(config, sockets, std::future::pending(), weiche::Control::new()))
    });
    wait_for("ready", Duration::from_secs(10), || http(api, "GET", "/readyz", None), |r| r.0 == 200);

    // Any thread of the process: a worker that dies takes the server down with it.
    let _ = std::thread::Builder::new().name("doomed-worker".into()).spawn(|| panic!("boom")).unwrap().join();

    let result = server.join().expect("serve returns, it does not hang or panic itself");
    let e = result.expect_err("serve reports the failure").to_string();
    assert!(e.contains("thread doomed-worker panicked at tests/fatal.rs") && e.contains("boom"), "{e}");
    assert_eq!(weiche::fatal::failed().map(|w| w.contains("boom")), Some(true));
}
