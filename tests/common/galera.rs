//! A real three-node MariaDB Galera cluster for the tests, from Debian's `mariadb-server`,
//! `galera-4` and `rsync`: one `mariadbd` per node on its own 127.0.0.0/8 address, datadirs in a
//! temporary folder, state transfer by rsync. It forms in about ten seconds and goes when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Killed, skip, wait_for};

const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

pub struct Node {
    pub addr: String,
    dir: PathBuf,
    process: Option<Killed>,
}

pub struct Galera {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// Whether everything the cluster needs is installed; if not, [`skip`]s saying what is missing.
pub fn available() -> bool {
    let missing: Vec<&str> = [
        ("mariadbd", "mariadb-server"),
        ("mariadb-install-db", "mariadb-server"),
        ("mariadb", "mariadb-client"),
        ("rsync", "rsync"),
        ("wsrep_sst_rsync", "mariadb-server"),
    ]
    .into_iter()
    .filter(|(tool, _)| {
        !Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .map(|(_, pkg)| pkg)
    .chain((!Path::new(PROVIDER).exists()).then_some("galera-4"))
    .collect();
    if !missing.is_empty() {
        skip(&format!(
            "a Galera cluster needs Debian's {} (apt-get install mariadb-server galera-4 rsync)",
            missing.join(", ")
        ));
    }
    missing.is_empty()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Galera {
    /// Starts three nodes at `addrs` (the first bootstraps the cluster) and waits until all are
    /// Synced in one Primary component of three.
    pub fn start(addrs: [&str; 3]) -> Galera {
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        if root {
            // mariadbd runs as mysql, which must reach its datadir inside the temporary folder.
            set_mode(dir.path(), 0o755);
        }
        let members = addrs.map(|a| format!("{a}:4567")).join(",");
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let d = dir.path().join(format!("n{}", i + 1));
            std::fs::create_dir_all(d.join("data")).unwrap();
            let user = if root { "user=mysql\n" } else { "" };
            let cnf = format!(
                "[mariadbd]\n{user}datadir={d}/data\nsocket={d}/sock\npid-file={d}/pid\nbind-address={addr}\nport=3306\n\
                 log-error={d}/error.log\nbinlog_format=ROW\ndefault_storage_engine=InnoDB\ninnodb_autoinc_lock_mode=2\n\
                 innodb_buffer_pool_size=16M\ninnodb_log_file_size=8M\nperformance_schema=ON\n\
                 performance_schema_max_thread_instances=200\nperformance_schema_max_table_instances=100\n\
                 max_connect_errors=100\n\
                 wsrep_on=ON\nwsrep_provider={PROVIDER}\nwsrep_cluster_name=weiche-test\n\
                 wsrep_cluster_address=gcomm://{members}\nwsrep_node_address={addr}\nwsrep_node_name=n{n}\n\
                 wsrep_sst_method=rsync\nwsrep_sst_receive_address={addr}:4444\n\
                 wsrep_provider_options=\"gmcast.listen_addr=tcp://{addr}:4567;ist.recv_addr={addr}:4568;gcache.size=16M;\
                 evs.suspect_timeout=PT3S;evs.inactive_timeout=PT5S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S\"\n",
                d = d.display(),
                n = i + 1,
            );
            std::fs::write(d.join("my.cnf"), cnf).unwrap();
            if root {
                chown_mysql(&d);
            }
            nodes.push(Node { addr: addr.to_string(), dir: d, process: None });
        }
        let first = &nodes[0];
        let out = Command::new("mariadb-install-db")
            .arg(format!("--defaults-file={}", first.dir.join("my.cnf").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let mut g = Galera { nodes, _dir: dir };
        g.start_node(0, true);
        g.wait_synced(0);
        g.start_node(1, false);
        g.start_node(2, false);
        for i in 0..3 {
            g.wait_synced(i);
        }
        g.wait_size(0, 3);
        g
    }

    /// Starts node `i` (`bootstrap`: as a new cluster); returns once it takes connections.
    pub fn start_node(&mut self, i: usize, bootstrap: bool) {
        let n = &mut self.nodes[i];
        let mut cmd = Command::new("mariadbd");
        cmd.arg(format!("--defaults-file={}", n.dir.join("my.cnf").display()));
        if bootstrap {
            cmd.arg("--wsrep-new-cluster");
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        n.process = Some(Killed(cmd.spawn().unwrap()));
        let sock = n.dir.join("sock");
        let log = n.dir.join("error.log");
        wait_for(
            &format!("mariadbd n{} to take connections", i + 1),
            Duration::from_secs(120),
            || sock.exists() || self.nodes[i].process.as_mut().unwrap().0.try_wait().unwrap().is_some(),
            |ok| *ok,
        );
        let exited = self.nodes[i].process.as_mut().unwrap().0.try_wait().unwrap();
        assert!(exited.is_none(), "mariadbd n{} exited: {}", i + 1, std::fs::read_to_string(log).unwrap_or_default());
    }

    /// Stops node `i` the way a crash or power loss does.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].process = None;
        let _ = std::fs::remove_file(self.nodes[i].dir.join("sock"));
    }

    /// Runs `sql` on node `i` as root over its Unix socket; returns the rows, tab-separated.
    pub fn sql(&self, i: usize, sql: &str) -> Result<String, String> {
        run_sql(&self.nodes[i].dir, sql)
    }

    /// One global status variable of node `i`.
    pub fn status(&self, i: usize, var: &str) -> String {
        let row = self.sql(i, &format!("SHOW GLOBAL STATUS LIKE '{var}'")).unwrap_or_default();
        row.split('\t').nth(1).unwrap_or_default().to_string()
    }

    pub fn wait_synced(&self, i: usize) {
        wait_for(
            &format!("n{} to be Synced", i + 1),
            Duration::from_secs(120),
            || (self.status(i, "wsrep_local_state_comment"), self.status(i, "wsrep_cluster_status")),
            |(state, cluster)| state == "Synced" && cluster == "Primary",
        );
    }

    pub fn wait_size(&self, i: usize, size: usize) {
        wait_for(
            &format!("n{} to see a cluster of {size}", i + 1),
            Duration::from_secs(60),
            || self.status(i, "wsrep_cluster_size"),
            |s| *s == size.to_string(),
        );
    }
}

/// Runs `sql` as root over the Unix socket of the server whose folder is `dir`.
fn run_sql(dir: &Path, sql: &str) -> Result<String, String> {
    let out = Command::new("mariadb")
        .arg(format!("--socket={}", dir.join("sock").display()))
        .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// One plain MariaDB server (no wsrep) at `addr`:3306, in a temporary folder; `extra` goes into
/// its `[mariadbd]` group. Stops when dropped.
pub struct Mariadb {
    pub addr: String,
    _process: Killed,
    dir: tempfile::TempDir,
}

impl Mariadb {
    pub fn start(addr: &str, extra: &str) -> Mariadb {
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        let d = dir.path().display().to_string();
        let user = if root { "user=mysql\n" } else { "" };
        let cnf = format!(
            "[mariadbd]\n{user}datadir={d}/data\nsocket={d}/sock\npid-file={d}/pid\nbind-address={addr}\nport=3306\n\
             log-error={d}/error.log\ninnodb_buffer_pool_size=16M\ninnodb_log_file_size=8M\nperformance_schema=OFF\n{extra}\n"
        );
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("my.cnf"), cnf).unwrap();
        if root {
            set_mode(dir.path(), 0o755);
            chown_mysql(dir.path());
        }
        let defaults = format!("--defaults-file={d}/my.cnf");
        let out = Command::new("mariadb-install-db")
            .arg(&defaults)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let mut process = Killed(
            Command::new("mariadbd").arg(&defaults).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
        );
        let sock = dir.path().join("sock");
        wait_for(
            &format!("mariadbd at {addr} to take connections"),
            Duration::from_secs(60),
            || sock.exists() || process.0.try_wait().unwrap().is_some(),
            |ok| *ok,
        );
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        assert!(process.0.try_wait().unwrap().is_none(), "mariadbd at {addr} exited: {log}");
        Mariadb { addr: addr.into(), _process: process, dir }
    }

    pub fn sql(&self, sql: &str) -> Result<String, String> {
        run_sql(self.dir.path(), sql)
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_mysql(p: &Path) {
    let ok = Command::new("chown").args(["-R", "mysql:mysql"]).arg(p).status().is_ok_and(|s| s.success());
    assert!(ok, "chown -R mysql:mysql {}", p.display());
}
