//! The `mysql` check against real MariaDB servers started by the test: a primary (127.0.36.1)
//! and an asynchronous replica of it (127.0.36.2). `SELECT 1`, a configured query, the replica's
//! lag, a refused login and a stopped server each decide as documented.

mod common;

use std::time::Duration;

use common::galera::Mariadb;
use common::*;

const PRIMARY: &str = "127.0.36.1";
const REPLICA: &str = "127.0.36.2";

#[test]
fn mysql_checks_judge_primaries_and_replicas() {
    if !common::galera::available() {
        return;
    }
    let primary = Mariadb::start(PRIMARY, "server_id=1\nlog_bin=primary-bin\nbinlog_format=ROW");
    let replica = Mariadb::start(REPLICA, "server_id=2\nread_only=ON");
    let users = "CREATE USER 'weiche'@'%' IDENTIFIED BY 'mon-pw'; GRANT SLAVE MONITOR ON *.* TO 'weiche'@'%';";
    primary
        .sql(&format!(
            "{users} CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pw'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';"
        ))
        .unwrap();
    replica
        .sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='{PRIMARY}', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=no; START SLAVE;"
        ))
        .unwrap();
    // The users come to the replica by replication.
    let _ = wait_for(
        "the replica to replicate",
        Duration::from_secs(30),
        || {
            replica
                .sql("SHOW GLOBAL STATUS LIKE 'Slave_running'; SELECT COUNT(*) FROM mysql.user WHERE user = 'weiche'")
        },
        |s| s.as_deref() == Ok("Slave_running\tON\n1"),
    );

    let dir = tempfile::tempdir().unwrap();
    let creds = |name: &str, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("[client]\nuser=weiche\npassword={password}\n")).unwrap();
        path.display().to_string()
    };
    let (good, bad) = (creds("mon.cnf", "mon-pw"), creds("wrong.cnf", "not-the-password"));
    let timing = "interval = \"500ms\"\ntimeout = \"400ms\"\nfall = 2\nrise = 2";
    let zone = zone(&format!(
        "[checks.plain]\ntype = \"mysql\"\ncredentials_file = \"{good}\"\n{timing}\n\
         [checks.writable]\ntype = \"mysql\"\ncredentials_file = \"{good}\"\nquery = \"SELECT @@global.read_only = 0\"\n{timing}\n\
         [checks.replica]\ntype = \"mysql\"\ncredentials_file = \"{good}\"\nmax_replication_lag = \"10s\"\n{timing}\n\
         [checks.refused]\ntype = \"mysql\"\ncredentials_file = \"{bad}\"\n{timing}\n\
         [pools.rw]\ncheck = \"plain\"\nall_down = \"none\"\ntargets = [{{ address = \"{PRIMARY}\", priority = 1 }}, {{ address = \"{REPLICA}\", priority = 2 }}]\n\
         [pools.writer]\ncheck = \"writable\"\nall_down = \"none\"\ntargets = [{{ address = \"{REPLICA}\", priority = 1 }}, {{ address = \"{PRIMARY}\", priority = 2 }}]\n\
         [pools.ro]\ncheck = \"replica\"\nall_down = \"none\"\ntargets = [{{ address = \"{REPLICA}\", priority = 1 }}, {{ address = \"{PRIMARY}\", priority = 2, check = \"plain\" }}]\n\
         [pools.bad]\ncheck = \"refused\"\nall_down = \"none\"\ntargets = [{{ address = \"{PRIMARY}\", priority = 1 }}]\n"
    ));
    let s = Server::start("127.0.36.53", &[("example.com.toml", &zone)]);
    let (rw, writer, ro, badp) = ("rw.example.com.", "writer.example.com.", "ro.example.com.", "bad.example.com.");

    // SELECT 1 passes on both; the writer query only on the primary (the replica is read-only);
    // the lag check on the replica, and the primary is no replica at all.
    wait_for_answer(&s, rw, &[PRIMARY], Duration::from_secs(10));
    wait_for_target(s.api, rw, REPLICA, "up", |t| t["verdict"] == "up");
    wait_for_answer(&s, writer, &[PRIMARY], Duration::from_secs(10));
    down_with(s.api, 15, writer, REPLICA, "the query's answer is not true: 0");
    wait_for_answer(&s, ro, &[REPLICA], Duration::from_secs(10));
    let t = down_with(s.api, 15, badp, PRIMARY, "Access denied for user 'weiche'");
    eprintln!("wrong password: {}", t["last_probe"]["error"]);

    // The replica stops applying: it leaves the read pool, which falls back to the primary (its
    // own, plain check); it comes back once replication runs again.
    replica.sql("STOP SLAVE SQL_THREAD").unwrap();
    let t = down_with(s.api, 15, ro, REPLICA, "replication is not running (IO thread Yes, SQL thread No)");
    eprintln!("stopped replica: {}", t["last_probe"]["error"]);
    wait_for_answer(&s, ro, &[PRIMARY], Duration::from_secs(5));
    replica.sql("START SLAVE SQL_THREAD").unwrap();
    wait_for_answer(&s, ro, &[REPLICA], Duration::from_secs(10));

    // The primary stops: the replica takes its traffic.
    drop(primary);
    down_with(s.api, 15, rw, PRIMARY, "connection refused");
    wait_for_answer(&s, rw, &[REPLICA], Duration::from_secs(5));
}
