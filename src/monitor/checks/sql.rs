//! The login the `galera` and `mysql` checks share: one fresh MySQL-protocol connection per
//! probe (mysql_async), closed with COM_QUIT, so the server counts an orderly client and
//! neither `Aborted_connects` nor the host's connect errors grow.

use std::net::SocketAddr;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, SslOpts, Value};

use crate::model::pool::SqlLogin;

/// Connection settings built once per target.
pub struct Login {
    opts: Opts,
}

impl Login {
    pub fn new(addr: SocketAddr, login: &SqlLogin) -> Login {
        let mut b = OptsBuilder::default()
            .ip_or_hostname(addr.ip().to_string())
            .tcp_port(addr.port())
            .user(Some(login.user.clone()))
            .pass(Some(login.password.0.clone()))
            // Without these, the client asks the server for them with a SELECT right after the
            // login, and on loopback looks for a Unix socket to reconnect through: a probe must
            // test the TCP path it was given, with no query but its own.
            .prefer_socket(false)
            .max_allowed_packet(Some(1 << 20))
            .wait_timeout(Some(60))
            .stmt_cache_size(0)
            .tcp_nodelay(true);
        if let Some(tls) = &login.tls {
            let mut ssl = SslOpts::default().with_danger_accept_invalid_certs(!tls.verify);
            if let Some(h) = &tls.host {
                ssl = ssl.with_danger_tls_hostname_override(Some(h.clone()));
            }
            if let Some(ca) = &tls.ca {
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            b = b.ssl_opts(Some(ssl));
        }
        Login { opts: b.into() }
    }

    /// Logs in. End with [`quit`], whatever the probe found.
    pub async fn connect(&self) -> Result<Conn, String> {
        Conn::new(self.opts.clone()).await.map_err(|e| cause(&e))
    }
}

/// Says goodbye with COM_QUIT, so the server logs an orderly client.
pub async fn quit(conn: Conn) {
    let _ = conn.disconnect().await;
}

/// A driver error in the words an operator expects in a target's cause.
pub fn cause(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => super::io_cause(io),
        mysql_async::Error::Server(s) => format!("server error {}: {}", s.code, s.message),
        e => e.to_string(),
    }
}

/// The rows of a statement, as name → text pairs of their first two columns (`SHOW STATUS`).
pub async fn name_values(conn: &mut Conn, sql: &str) -> Result<Vec<(String, String)>, String> {
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| cause(&e))?;
    Ok(rows.into_iter().filter_map(|r| Some((text(r.as_ref(0)?)?, text(r.as_ref(1)?)?))).collect())
}

/// A value as text (None: NULL).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        v => Some(v.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// Whether a query's first column says yes: not NULL, not empty, not 0, OFF, NO or FALSE.
pub fn truthy(v: &Value) -> bool {
    let Some(t) = text(v) else { return false };
    let t = t.trim();
    if let Ok(n) = t.parse::<f64>() {
        return n != 0.0;
    }
    !t.is_empty() && !["off", "no", "false"].iter().any(|f| t.eq_ignore_ascii_case(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness() {
        for yes in
            [Value::Int(1), Value::Bytes(b"1".to_vec()), Value::Bytes(b"ON".to_vec()), Value::Bytes(b"x".to_vec())]
        {
            assert!(truthy(&yes), "{yes:?}");
        }
        for no in [
            Value::NULL,
            Value::Int(0),
            Value::Bytes(b"0".to_vec()),
            Value::Bytes(b"0.0".to_vec()),
            Value::Bytes(b"".to_vec()),
            Value::Bytes(b"OFF".to_vec()),
            Value::Bytes(b"false".to_vec()),
        ] {
            assert!(!truthy(&no), "{no:?}");
        }
    }
}
