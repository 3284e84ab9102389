//! `type = "mysql"`: logs in as the monitoring user and runs `SELECT 1` (or the configured
//! query, whose first column must be truthy). With `max_replication_lag`, the server must also be
//! a running replica no further behind than that.

use std::net::SocketAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::Probe;
use super::sql::{self, Login};
use crate::model::pool::{Check, Probe as Spec};

pub struct MysqlProbe {
    login: Login,
    query: String,
    max_lag: Option<Duration>,
}

impl MysqlProbe {
    pub fn new(addr: SocketAddr, check: &Check) -> MysqlProbe {
        let Spec::Mysql { login, query, max_replication_lag } = &check.probe else {
            unreachable!("a mysql prober for a {:?} check", check.kind)
        };
        MysqlProbe { login: Login::new(addr, login), query: query.clone(), max_lag: *max_replication_lag }
    }

    async fn judge(&self, conn: &mut Conn) -> Result<(), String> {
        let row: Option<Row> = conn.query_first(self.query.as_str()).await.map_err(|e| sql::cause(&e))?;
        let first = row.as_ref().and_then(|r| r.as_ref(0));
        if !first.is_some_and(sql::truthy) {
            let shown = first.and_then(sql::text).unwrap_or_else(|| "no row or NULL".into());
            return Err(format!("the query's answer is not true: {shown}"));
        }
        if let Some(max) = self.max_lag {
            let status = replica_status(conn).await?;
            lag_verdict(&status, max)?;
        }
        Ok(())
    }
}

impl Probe for MysqlProbe {
    async fn probe(&self) -> Result<(), String> {
        let mut conn = self.login.connect().await?;
        let result = self.judge(&mut conn).await;
        sql::quit(conn).await;
        result
    }
}

/// The replica status as column name → text (empty: not a replica). `SHOW REPLICA STATUS` is
/// MariaDB 10.5+ and MySQL 8.0.22+; older servers know only `SHOW SLAVE STATUS`.
async fn replica_status(conn: &mut Conn) -> Result<Vec<(String, Option<String>)>, String> {
    let rows: Vec<Row> = match conn.query("SHOW REPLICA STATUS").await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
            conn.query("SHOW SLAVE STATUS").await.map_err(|e| sql::cause(&e))?
        }
        Err(e) => return Err(sql::cause(&e)),
    };
    let Some(row) = rows.first() else { return Ok(Vec::new()) };
    let names: Vec<String> = row.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
    Ok(names.into_iter().enumerate().map(|(i, n)| (n, row.as_ref(i).and_then(sql::text))).collect())
}

/// Whether a replica with this status is close enough behind its primary.
pub fn lag_verdict(status: &[(String, Option<String>)], max: Duration) -> Result<(), String> {
    if status.is_empty() {
        return Err("not a replica (SHOW REPLICA STATUS is empty)".into());
    }
    let get = |names: &[&str]| {
        status.iter().find(|(n, _)| names.iter().any(|x| n.eq_ignore_ascii_case(x))).and_then(|(_, v)| v.clone())
    };
    let lag = get(&["Seconds_Behind_Master", "Seconds_Behind_Source"]);
    let Some(lag) = lag.and_then(|l| l.parse::<u64>().ok()) else {
        let io = get(&["Slave_IO_Running", "Replica_IO_Running"]).unwrap_or_else(|| "?".into());
        let sql = get(&["Slave_SQL_Running", "Replica_SQL_Running"]).unwrap_or_else(|| "?".into());
        return Err(format!("replication is not running (IO thread {io}, SQL thread {sql})"));
    };
    if Duration::from_secs(lag) > max {
        return Err(format!("replication lag {lag}s is over {}s", max.as_secs()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect()
    }

    #[test]
    fn replication_lag() {
        let max = Duration::from_secs(30);
        assert!(lag_verdict(&status(&[("Seconds_Behind_Master", Some("3"))]), max).is_ok());
        assert!(lag_verdict(&status(&[("Seconds_Behind_Source", Some("30"))]), max).is_ok());
        assert_eq!(
            lag_verdict(&status(&[("Seconds_Behind_Master", Some("31"))]), max),
            Err("replication lag 31s is over 30s".into())
        );
        assert_eq!(
            lag_verdict(
                &status(&[
                    ("Slave_IO_Running", Some("Connecting")),
                    ("Slave_SQL_Running", Some("Yes")),
                    ("Seconds_Behind_Master", None)
                ]),
                max
            ),
            Err("replication is not running (IO thread Connecting, SQL thread Yes)".into())
        );
        assert_eq!(lag_verdict(&[], max), Err("not a replica (SHOW REPLICA STATUS is empty)".into()));
    }
}
