//! The `weiche` command: parses the command line, sets up logging, and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use weiche::config::{Config, LogFormat};

/// Authoritative DNS nameserver with built-in health checks and automatic failover.
///
/// Serves every zone in the zones directory (NAME.zone master files, NAME.toml zones with
/// pools) over UDP and TCP. Without a subcommand, `serve` runs.
#[derive(Parser)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS (the default).
    Serve(ServeArgs),
    /// Validate the configuration and every zone without serving.
    ///
    /// Prints each problem as file:line:col: message. Exits non-zero where serve would not
    /// start: a bad configuration, an unreadable zones directory. Zones with errors, which serve
    /// leaves out while it serves the others, are reported and fail only with --strict.
    Check(CheckArgs),
    /// Show every pool: what it answers, and each target's verdict, since when, and drains.
    Status(ClientArgs),
    /// Take a target out of every answer (or one pool's) while it stays probed.
    Drain(DrainArgs),
    /// Put a drained target back.
    Undrain(DrainArgs),
    /// Release a manual-failback pool back to its best healthy level.
    Failback(FailbackArgs),
    /// Show recent events; with --follow, keep printing new ones.
    Events(EventsArgs),
    /// Read weiche.toml and the zones again, as SIGHUP does, and say what changed. Webhooks,
    /// commands, the log level, [transfer] and [keys] take effect at once; settings such as
    /// listen addresses are named and wait for a restart. A file with an error changes nothing.
    Reload(ClientArgs),
    /// Make DNSSEC keys for a zone in BIND's format (Kzone.+AAA+TTTTT.key and .private): a CSK
    /// by default, or a KSK and a ZSK. Created, Publish and Activate are set to now. Prints the
    /// new files' names.
    Keygen(KeygenArgs),
    /// Print the DS records of a zone's KSKs and CSKs, to give the registrar (as
    /// dnssec-dsfromkey prints them).
    Ds(DsArgs),
}

#[derive(Args, Clone)]
struct KeygenArgs {
    /// The zone, e.g. example.com
    zone: String,
    /// The key directory.
    #[arg(long, short = 'K', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// 13 (ECDSAP256SHA256) or 15 (ED25519).
    #[arg(long, short, value_name = "N", default_value_t = 13, value_parser = parse_algorithm)]
    algorithm: u8,
    /// A KSK (flags 257) and a ZSK (flags 256) instead of one CSK.
    #[arg(long)]
    ksk_zsk: bool,
}

#[derive(Args, Clone)]
struct DsArgs {
    /// The zone, e.g. example.com
    zone: String,
    /// The key directory.
    #[arg(long, short = 'K', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// 2 (SHA-256) or 4 (SHA-384).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = parse_digest)]
    digest: u8,
}

fn parse_algorithm(s: &str) -> Result<u8, String> {
    match s {
        "13" | "ECDSAP256SHA256" | "ecdsap256sha256" => Ok(13),
        "15" | "ED25519" | "ed25519" => Ok(15),
        _ => Err("weiche makes keys of algorithm 13 (ECDSAP256SHA256) or 15 (ED25519)".into()),
    }
}

fn parse_digest(s: &str) -> Result<u8, String> {
    match s {
        "2" => Ok(2),
        "4" => Ok(4),
        _ => Err("digest type 2 (SHA-256) or 4 (SHA-384)".into()),
    }
}

/// How to reach a running weiche's HTTP API.
#[derive(Args, Clone)]
struct ClientArgs {
    /// The API's address (default: api.listen of --config, else 127.0.0.1:8053).
    #[arg(long, value_name = "ADDR:PORT")]
    api: Option<SocketAddr>,
    /// The configuration file to take api.listen and api.token_file from.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A file holding the API's bearer token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct DrainArgs {
    /// The target's answered address.
    address: String,
    /// Only in this pool (default: in every pool).
    #[arg(long, value_name = "NAME")]
    pool: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Clone)]
struct FailbackArgs {
    /// The pool's name, e.g. www.example.com
    pool: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Clone)]
struct EventsArgs {
    /// Keep waiting for new events and print them as they come.
    #[arg(long, short)]
    follow: bool,
    /// Show the history since then, from the journal: a duration back (24h, 7d) or a time
    /// (2026-11-21T00:00:00Z). Without it, the most recent events kept in memory.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only the events of this pool, e.g. www.example.com
    #[arg(long, value_name = "NAME")]
    pool: Option<String>,
    /// Read the journal in this state directory directly, without the API (works while weiche
    /// is down). Without it, the journal in --config's server.state_dir is read when the API
    /// cannot be reached.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Clone, Default)]
struct CommonArgs {
    /// Configuration file (default: built-in settings, zones from ./zones).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Zones directory (overrides the configuration's server.zones).
    #[arg(long, value_name = "DIR")]
    zones: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
struct CheckArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Also exit non-zero when a zone has errors or there is no zone at all (for CI, before a
    /// change goes out).
    #[arg(long)]
    strict: bool,
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address and port to answer on, UDP and TCP; repeat for more (overrides server.listen).
    #[arg(long, short, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// HTTP API address, or "off" (overrides api.listen; default 127.0.0.1:8053).
    #[arg(long, value_name = "ADDR:PORT|off", value_parser = parse_api)]
    api: Option<ApiAddr>,
    /// Log format on stderr (overrides log.format).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Answer IPv4 UDP queries on this interface through AF_XDP, bypassing the kernel's UDP
    /// stack and netfilter (overrides server.xdp; needs CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW).
    #[arg(long, value_name = "IFACE")]
    xdp: Option<String>,
}

#[derive(Clone, Debug)]
struct ApiAddr(Option<SocketAddr>);

fn parse_api(s: &str) -> Result<ApiAddr, String> {
    weiche::config::parse_api_listen(s).map(ApiAddr)
}

fn load_config(args: &CommonArgs) -> Result<Config, String> {
    let mut config = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(z) = &args.zones {
        config.zones_dir = z.clone();
        config.from_command_line.push("zones");
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(args)) => check(&args),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Status(c)) => {
            client(&c, |api| async move { api.status().await }, weiche::ops::client::status_table)
        }
        Some(Command::Drain(d)) => drain(d, true),
        Some(Command::Undrain(d)) => drain(d, false),
        Some(Command::Failback(f)) => client(
            &f.client,
            |api| async move { api.failback(&f.pool).await },
            |r: &weiche::ops::doc::FailbackReply| format!("failback released: {}\n", r.pool),
        ),
        Some(Command::Events(e)) => events(&e),
        Some(Command::Reload(c)) => client(
            &c,
            |api| async move { api.reload().await },
            |r: &weiche::ops::doc::ReloadReply| {
                let mut out = String::from("configuration reloaded; zones looked at\n");
                if !r.changed.is_empty() {
                    out += &format!("  applied: {}\n", r.changed.join(", "));
                }
                if !r.restart.is_empty() {
                    out += &format!("  at the next restart: {}\n", r.restart.join(", "));
                }
                if r.changed.is_empty() && r.restart.is_empty() {
                    out += "  no setting changed\n";
                }
                out
            },
        ),
        Some(Command::Keygen(k)) => keygen(&k),
        Some(Command::Ds(d)) => ds(&d),
        None => serve(cli.serve),
    }
}

fn zone_name(zone: &str) -> Result<weiche::model::name::Name, String> {
    weiche::model::name::Name::parse(zone, Some(&weiche::model::name::Name::root())).map_err(|e| format!("zone: {e}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn keygen(k: &KeygenArgs) -> ExitCode {
    use weiche::dnssec::{Algorithm, FLAGS_KSK, FLAGS_ZSK, keygen};
    let zone = match zone_name(&k.zone) {
        Ok(z) => z,
        Err(e) => {
            eprintln!("weiche: {e}");
            return ExitCode::FAILURE;
        }
    };
    let algorithm = Algorithm::from_number(k.algorithm).expect("checked by the parser");
    let flags: &[u16] = if k.ksk_zsk { &[FLAGS_KSK, FLAGS_ZSK] } else { &[FLAGS_KSK] };
    let rng = ring::rand::SystemRandom::new();
    let now = unix_now();
    for &f in flags {
        match keygen::generate_into(&k.dir, &zone, algorithm, f, now, &rng) {
            Ok(path) => println!(
                "{}",
                path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
            ),
            Err(e) => {
                eprintln!("weiche: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn ds(d: &DsArgs) -> ExitCode {
    use weiche::dnssec::{keys, records::DigestType};
    let zone = match zone_name(&d.zone) {
        Ok(z) => z,
        Err(e) => {
            eprintln!("weiche: {e}");
            return ExitCode::FAILURE;
        }
    };
    let digest = DigestType::from_number(d.digest).expect("checked by the parser");
    let all = match keys::load_zone_keys(&d.dir, &zone) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("weiche: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = unix_now();
    let mut printed = 0;
    for key in all.iter().filter(|k| k.is_ksk()) {
        // A deleted key's DS would point the parent at a key the zone no longer has.
        if key.timing.delete.is_some_and(|t| t <= now) {
            eprintln!(
                "weiche: {}: left out: deleted since {}",
                key.path.display(),
                keys::format_timestamp(key.timing.delete.unwrap_or(0))
            );
            continue;
        }
        if !key.timing.published_at(now) {
            let from = key
                .timing
                .publish
                .or(key.timing.activate)
                .map_or_else(|| "no Publish time".to_string(), keys::format_timestamp);
            eprintln!(
                "weiche: {}: not published yet ({from}): give the parent its DS once the DNSKEY has been served long enough",
                key.path.display()
            );
        }
        println!("{}", key.ds_text(digest));
        printed += 1;
    }
    if printed == 0 {
        eprintln!(
            "weiche: no KSK or CSK (flags 257) for {zone} in {}: make one with weiche keygen {}",
            d.dir.display(),
            d.zone
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn connect(args: &ClientArgs) -> Result<weiche::ops::client::Api, String> {
    let config = match &args.config {
        Some(_) => Some(Config::load(args.config.as_deref()).map_err(|e| e.to_string())?),
        None => None,
    };
    let from_config = config.as_ref().and_then(|c| c.api_listen);
    let addr = args.api.or(from_config).unwrap_or_else(|| weiche::config::DEFAULT_API.parse().expect("valid"));
    let token = match &args.token_file {
        Some(f) => Some(
            weiche::config::bounded::read_text(
                f,
                weiche::config::bounded::SECRET_LIMIT,
                "the most a token file may have",
            )
            .map_err(|e| format!("cannot read {}: {e}", f.display()))?
            .trim()
            .to_string(),
        ),
        None => config.and_then(|c| c.api_token),
    };
    Ok(weiche::ops::client::Api::new(addr, token))
}

/// Runs one API call and prints its answer (as text, or JSON with --json).
fn client<T, F, Fut>(args: &ClientArgs, call: F, text: impl Fn(&T) -> String) -> ExitCode
where
    T: serde::Serialize,
    F: FnOnce(weiche::ops::client::Api) -> Fut,
    Fut: std::future::Future<Output = Result<T, weiche::ops::client::ClientError>>,
{
    let api = match connect(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("weiche: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    match rt.block_on(call(api)) {
        Ok(v) if args.json => {
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", text(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weiche: {e}");
            ExitCode::FAILURE
        }
    }
}

fn drain(d: DrainArgs, drain: bool) -> ExitCode {
    let verb = if drain { "drained" } else { "undrained" };
    let what = format!("{} {verb}{}\n", d.address, d.pool.as_deref().map(|p| format!(" in {p}")).unwrap_or_default());
    client(&d.client, |api| async move { api.drain(&d.address, d.pool.as_deref(), drain).await }, move |_| what.clone())
}

fn events(e: &EventsArgs) -> ExitCode {
    let print = |ev: &weiche::ops::events::Event| {
        use std::io::Write;
        let line = if e.client.json {
            serde_json::to_string(ev).expect("JSON")
        } else {
            weiche::ops::client::event_line(ev).trim_start().to_string()
        };
        // Output into a pipe closed early (`weiche events | head`) ends the command quietly,
        // as it does other tools, instead of a panic in println!.
        if let Err(err) = writeln!(std::io::stdout().lock(), "{line}") {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("weiche: cannot write the events: {err}");
            std::process::exit(1);
        }
    };
    let of_pool =
        |ev: &weiche::ops::events::Event| e.pool.as_deref().is_none_or(|p| weiche::ops::journal::about_pool(ev, p));
    if let Some(dir) = &e.state_dir {
        if e.follow {
            eprintln!("weiche: --follow needs a running weiche: leave out --state-dir");
            return ExitCode::FAILURE;
        }
        return from_journal(dir, e, &print);
    }
    let api = match connect(&e.client) {
        Ok(a) => a,
        Err(err) => {
            eprintln!("weiche: {err}");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    rt.block_on(async {
        let mut since = 0;
        // What the history printed: following goes on after it.
        let mut printed = 0;
        if let Some(when) = &e.since {
            if e.follow {
                // Follow from the newest event before the history was read, so that nothing
                // between the two is missed.
                since = match api.events(0, 0).await {
                    Ok(v) => v.last().map_or(0, |ev| ev.seq),
                    Err(err) => {
                        eprintln!("weiche: {err}");
                        return ExitCode::FAILURE;
                    }
                };
            }
            match api.history(when, e.pool.as_deref()).await {
                Ok(history) => {
                    for ev in &history {
                        print(ev);
                    }
                    printed = history.last().map_or(0, |ev| ev.seq);
                }
                Err(err @ weiche::ops::client::ClientError::Unreachable { .. }) if !e.follow => {
                    // weiche is down: its journal still tells.
                    let config = e.client.config.as_deref().map(|c| Config::load(Some(c)));
                    return match config.and_then(Result::ok).and_then(|c| c.state_dir) {
                        Some(dir) => {
                            eprintln!("weiche: {err}; reading the journal in {} instead", dir.display());
                            from_journal(&dir, e, &print)
                        }
                        None => {
                            eprintln!(
                                "weiche: {err}; to read the journal while weiche is down, give --state-dir or --config"
                            );
                            ExitCode::FAILURE
                        }
                    };
                }
                Err(err) => {
                    eprintln!("weiche: {err}");
                    return ExitCode::FAILURE;
                }
            }
            if !e.follow {
                return ExitCode::SUCCESS;
            }
        }
        // The first call shows what is kept (unless the history did); later ones wait for
        // what comes next.
        let mut first = e.since.is_none();
        loop {
            let wait = if first { 0 } else { 55 };
            first = false;
            let batch = match api.events(since, wait).await {
                Ok(v) => v,
                Err(err) => {
                    eprintln!("weiche: {err}");
                    return ExitCode::FAILURE;
                }
            };
            for ev in batch {
                since = since.max(ev.seq);
                if ev.seq > printed && of_pool(&ev) {
                    print(&ev);
                }
            }
            if !e.follow {
                return ExitCode::SUCCESS;
            }
        }
    })
}

/// `weiche events` from the journal in `dir` rather than the API.
fn from_journal(dir: &std::path::Path, e: &EventsArgs, print: &dyn Fn(&weiche::ops::events::Event)) -> ExitCode {
    let since = match e.since.as_deref().map(|s| weiche::ops::journal::parse_since(s, std::time::SystemTime::now())) {
        Some(Ok(t)) => t,
        Some(Err(m)) => {
            eprintln!("weiche: --since: {m}");
            return ExitCode::FAILURE;
        }
        None => std::time::SystemTime::UNIX_EPOCH,
    };
    let layout = weiche::ops::journal::Layout::in_state_dir(dir, weiche::config::DEFAULT_EVENTS_KEEP);
    let (mut events, skipped) = match weiche::ops::journal::read_since(&layout, since) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("weiche: cannot read the event journal in {}: {err}", layout.dir.display());
            return ExitCode::FAILURE;
        }
    };
    for s in &skipped {
        eprintln!("weiche: warning: {s}");
    }
    if layout.segments().is_ok_and(|s| s.is_empty()) {
        eprintln!("weiche: no event journal in {} (is it weiche's server.state_dir?)", layout.dir.display());
        return ExitCode::FAILURE;
    }
    events.retain(|ev| e.pool.as_deref().is_none_or(|p| weiche::ops::journal::about_pool(ev, p)));
    // Without --since, as many as a running weiche keeps.
    if e.since.is_none() {
        let extra = events.len().saturating_sub(weiche::ops::events::KEEP);
        events.drain(..extra);
    }
    for ev in &events {
        print(ev);
    }
    ExitCode::SUCCESS
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match load_config(&args.common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weiche: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.listen.is_empty() {
        config.listen = args.listen;
        config.from_command_line.push("listen");
    }
    if let Some(f) = args.log_format {
        config.log_format = f;
        config.from_command_line.push("log.format");
    }
    if let Some(i) = args.xdp {
        config.xdp = Some(i);
        config.from_command_line.push("xdp");
    }
    if let Some(ApiAddr(a)) = args.api {
        config.api_listen = a;
        config.from_command_line.push("api.listen");
        if let Some(a) = a
            && let Err(e) = weiche::config::check_api_access(a, config.api_token.as_deref(), "--api")
        {
            eprintln!("weiche: {e}");
            return ExitCode::FAILURE;
        }
    }
    // After the command line's settings: `--xdp` names the interface that must be here.
    if let Err(e) = config.host_problems() {
        eprintln!("weiche: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = init_logging(&config) {
        eprintln!("weiche: {e}");
        return ExitCode::FAILURE;
    }
    weiche::fatal::install_panic_hook(Some(std::time::Duration::from_secs(10)));
    raise_fd_limit();
    let bound = weiche::Sockets::bind(&config.listen);
    let sockets = match config.api_listen {
        Some(api) => bound.and_then(|s| s.with_api(api)),
        None => bound,
    };
    let sockets = match sockets {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weiche: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(weiche::run(config, sockets, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Probing thousands of targets takes more file descriptors than the usual soft limit of 1024;
/// raise it to the hard limit, as daemons do.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(soft = lim.rlim_cur, "could not raise the open-files limit");
            }
        }
    }
}

/// Sets up logging at `log.level`, or at `WEICHE_LOG` if set; a `WEICHE_LOG` that is no level
/// or filter is an error (as a bad `log.level` is), not a panic or a silent default.
fn init_logging(config: &Config) -> Result<(), String> {
    use tracing_subscriber::prelude::*;
    // The certificate verifier logs an ERROR of its own, with no target or check, at every
    // failed verification: the probe's cause already says it, once, on the target's event and in
    // /status. WEICHE_LOG can bring it back (rustls_platform_verifier=debug).
    let directive = |level: &str| format!("{level},rustls_platform_verifier=off");
    let from_env = match std::env::var("WEICHE_LOG") {
        Ok(v) if v.trim().is_empty() => None,
        // Levels and targets are ASCII; tracing-subscriber's parser panics on some other text
        // (see config::log.level), so such text never reaches it.
        Ok(v) => match weiche::config::check_log_filter(v.trim()) {
            Ok(()) => Some(tracing_subscriber::EnvFilter::new(v.trim())),
            Err(e) => return Err(format!("WEICHE_LOG={v:?} {e}")),
        },
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(v)) => return Err(format!("WEICHE_LOG={v:?} is not text")),
    };
    let overridden = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(directive(&config.log_level)));
    // A reload of weiche.toml may change the level (unless WEICHE_LOG sets it).
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter);
    match config.log_format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).init(),
    }
    if !overridden {
        weiche::ops::reload::on_log_level(move |level| {
            let filter = tracing_subscriber::EnvFilter::try_new(directive(level)).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        });
    }
    Ok(())
}

/// Validates what `serve` would load. The exit code says whether `serve` would start (so a
/// unit's `ExecStartPre=weiche check` is never stricter than `serve`); with `--strict`, whether
/// every zone loads too. Zones with errors are reported either way, each problem at its
/// file:line:col, with what `serve` does about them.
fn check(args: &CheckArgs) -> ExitCode {
    let config = match load_config(&args.common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // What only this host can tell, as serve asks it.
    if let Err(e) = config.host_problems() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    if let Some(c) = &config.cluster {
        print_report(None, &weiche::cluster::report::arithmetic(c));
    }
    weiche::load::read::set_max_file_size(config.zone_file_limit);
    let loads = match weiche::load::loader::load_dir(&config.zones_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Zones weiche signs are signed as serve signs them: a key problem leaves the zone out.
    let signed: Vec<Option<Result<weiche::dnssec::zone::SignedZone, String>>> = loads
        .iter()
        .map(|l| {
            let d = config.dnssec.as_ref()?;
            let z = l.result.as_ref().ok().filter(|z| d.signs(&z.apex))?;
            Some(weiche::load::watch::sign_with(d, z))
        })
        .collect();
    let mut problems = 0;
    let mut bad = 0;
    let mut left_out = Vec::new();
    for (l, signed) in loads.iter().zip(&signed) {
        match (&l.result, signed) {
            (Ok(z), Some(Err(e))) => {
                eprintln!("{}: zone {}: cannot sign: {e}", l.file.path.display(), z.apex);
                problems += 1;
            }
            (Ok(z), signed) => {
                let dnssec = match signed {
                    Some(Ok(s)) => format!(
                        ", signed with {} key(s) until {}",
                        s.keys.len(),
                        weiche::dnssec::keys::format_timestamp(u64::from(s.window.expiration))
                    ),
                    _ => String::new(),
                };
                println!(
                    "{}: zone {} OK: serial {}, {} records, {} pools{dnssec}",
                    l.file.path.display(),
                    z.apex,
                    z.serial,
                    z.record_count,
                    z.pools.len()
                );
                continue;
            }
            (Err(errors), _) => {
                for e in errors {
                    eprintln!("{e}");
                }
                problems += errors.len();
            }
        }
        bad += 1;
        left_out.push(l.file.apex.to_string());
    }
    for (path, why) in weiche::load::loader::misnamed(&config.zones_dir) {
        eprintln!("WARNING: {} is not loaded: its name is no zone name ({why})", path.display());
    }
    for w in weiche::load::loader::taken_by_other_zones(&config.zones_dir, &loads) {
        eprintln!("WARNING: {w}");
    }
    if let Some(d) = &config.dnssec {
        for z in d.zones.iter().filter(|z| !loads.iter().any(|l| l.file.apex.key() == z.key())) {
            eprintln!("WARNING: [dnssec] zones names {z}, which is not in {}", config.zones_dir.display());
        }
    }
    if let Some(c) = &config.cluster {
        let zones: Vec<&weiche::model::zone::Zone> = loads.iter().filter_map(|l| l.result.as_ref().ok()).collect();
        for (l, z) in loads.iter().filter_map(|l| Some((l, l.result.as_ref().ok()?))) {
            let ns = weiche::cluster::report::ns_addresses(z, &zones);
            print_report(Some(&l.file.path), &weiche::cluster::report::ns_reach(c, &z.apex, &ns));
        }
    }
    let good = loads.len() - bad;
    let strict = if args.strict { "" } else { " (weiche check --strict fails on this)" };
    let refused = "serve would answer REFUSED to every query until one";
    if loads.is_empty() {
        eprintln!(
            "WARNING: no zones in {} (NAME.zone or NAME.toml files): {refused} is added{strict}",
            config.zones_dir.display()
        );
    } else if good == 0 {
        eprintln!("WARNING: {problems} problem(s) in {bad} of {bad} zone(s): no zone loads, so {refused} does{strict}");
    } else if bad > 0 {
        eprintln!(
            "WARNING: {problems} problem(s) in {bad} of {} zone(s): serve leaves out {} and serves the other \
             {good}{strict}",
            loads.len(),
            left_out.join(" ")
        );
    } else {
        println!("{good} zone(s) OK");
    }
    if args.strict && (bad > 0 || good == 0) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Prints a report's lines, and its warnings on stderr (they do not fail `check`).
fn print_report(file: Option<&std::path::Path>, r: &weiche::cluster::report::Report) {
    let at = file.map(|f| format!("{}: ", f.display())).unwrap_or_default();
    for l in &r.lines {
        println!("{at}{l}");
    }
    for w in &r.warnings {
        eprintln!("{at}WARNING: {w}");
    }
}
