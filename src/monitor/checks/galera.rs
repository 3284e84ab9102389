//! `type = "galera"`: logs in as the monitoring user and reads the node's wsrep status. A node
//! is up only in the Primary component, ready, and Synced (with `donor_ok`, also as a donor);
//! with `read_only_ok = false`, not while `read_only` is on. The cause of a failure is in
//! Galera's own words.
//!
//! Only `SHOW GLOBAL STATUS` and `SELECT @@global.read_only` are sent: both work on a node in a
//! non-Primary component, which refuses most other statements, and neither needs a privilege.

use std::net::SocketAddr;

use super::Probe;
use super::sql::{self, Login};
use crate::model::pool::{Check, Probe as Spec};

const STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
    ('wsrep_connected', 'wsrep_cluster_status', 'wsrep_ready', 'wsrep_local_state', 'wsrep_local_state_comment')";

pub struct GaleraProbe {
    login: Login,
    donor_ok: bool,
    read_only_ok: bool,
}

impl GaleraProbe {
    pub fn new(addr: SocketAddr, check: &Check) -> GaleraProbe {
        let Spec::Galera { login, donor_ok, read_only_ok } = &check.probe else {
            unreachable!("a galera prober for a {:?} check", check.kind)
        };
        GaleraProbe { login: Login::new(addr, login), donor_ok: *donor_ok, read_only_ok: *read_only_ok }
    }

    async fn judge(&self, conn: &mut mysql_async::Conn) -> Result<(), String> {
        let status = Wsrep::from_rows(sql::name_values(conn, STATUS).await?);
        let read_only = if self.read_only_ok {
            None
        } else {
            use mysql_async::prelude::Queryable;
            let v: Option<mysql_async::Value> =
                conn.query_first("SELECT @@global.read_only").await.map_err(|e| sql::cause(&e))?;
            Some(v.as_ref().is_some_and(sql::truthy))
        };
        verdict(&status, read_only, self.donor_ok)
    }
}

impl Probe for GaleraProbe {
    async fn probe(&self) -> Result<(), String> {
        let mut conn = self.login.connect().await?;
        let result = self.judge(&mut conn).await;
        sql::quit(conn).await;
        result
    }
}

/// The wsrep status variables the verdict reads (None: the server did not show it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Wsrep {
    pub connected: Option<String>,
    pub cluster_status: Option<String>,
    pub ready: Option<String>,
    pub local_state: Option<String>,
    pub local_state_comment: Option<String>,
}

impl Wsrep {
    fn from_rows(rows: Vec<(String, String)>) -> Wsrep {
        let mut w = Wsrep::default();
        for (name, value) in rows {
            let slot = match name.to_ascii_lowercase().as_str() {
                "wsrep_connected" => &mut w.connected,
                "wsrep_cluster_status" => &mut w.cluster_status,
                "wsrep_ready" => &mut w.ready,
                "wsrep_local_state" => &mut w.local_state,
                "wsrep_local_state_comment" => &mut w.local_state_comment,
                _ => continue,
            };
            *slot = Some(value);
        }
        w
    }
}

/// Whether a node with this status may get traffic; if not, why, in Galera's words.
/// `read_only` is None when it does not matter (`read_only_ok`).
pub fn verdict(w: &Wsrep, read_only: Option<bool>, donor_ok: bool) -> Result<(), String> {
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("ON"));
    let Some(cluster_status) = &w.cluster_status else {
        return Err("not a Galera node (no wsrep status: wsrep_on is OFF or no provider is loaded)".into());
    };
    if !on(&w.connected) {
        return Err("not connected to a cluster (wsrep_connected=OFF)".into());
    }
    if !cluster_status.eq_ignore_ascii_case("Primary") {
        return Err(format!("non-Primary component (wsrep_cluster_status={cluster_status})"));
    }
    if !on(&w.ready) {
        return Err("not ready (wsrep_ready=OFF)".into());
    }
    let state = w.local_state.as_deref().unwrap_or("?");
    let comment = w.local_state_comment.as_deref().unwrap_or(match state {
        "1" => "Joining",
        "2" => "Donor/Desynced",
        "3" => "Joined",
        "4" => "Synced",
        _ => "unknown state",
    });
    match state {
        "4" => {}
        "2" if donor_ok => {}
        _ => return Err(format!("{comment} (wsrep_local_state={state})")),
    }
    if read_only == Some(true) {
        return Err("read_only=ON".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced() -> Wsrep {
        Wsrep::from_rows(
            [
                ("wsrep_connected", "ON"),
                ("wsrep_cluster_status", "Primary"),
                ("wsrep_ready", "ON"),
                ("wsrep_local_state", "4"),
                ("wsrep_local_state_comment", "Synced"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .into(),
        )
    }

    #[test]
    fn only_a_synced_primary_ready_node_is_up() {
        assert_eq!(verdict(&synced(), None, false), Ok(()));
        assert_eq!(verdict(&synced(), Some(false), false), Ok(()));
        type Change = fn(&mut Wsrep);
        let cases: [(Change, &str); 7] = [
            (|w| *w = Wsrep::default(), "not a Galera node"),
            (|w| w.connected = Some("OFF".into()), "not connected to a cluster (wsrep_connected=OFF)"),
            (
                |w| w.cluster_status = Some("non-Primary".into()),
                "non-Primary component (wsrep_cluster_status=non-Primary)",
            ),
            (
                |w| w.cluster_status = Some("Disconnected".into()),
                "non-Primary component (wsrep_cluster_status=Disconnected)",
            ),
            (|w| w.ready = Some("OFF".into()), "not ready (wsrep_ready=OFF)"),
            (
                |w| (w.local_state, w.local_state_comment) = (Some("2".into()), Some("Donor/Desynced".into())),
                "Donor/Desynced (wsrep_local_state=2)",
            ),
            (|w| (w.local_state, w.local_state_comment) = (Some("1".into()), None), "Joining (wsrep_local_state=1)"),
        ];
        for (change, cause) in cases {
            let mut w = synced();
            change(&mut w);
            let e = verdict(&w, None, false).unwrap_err();
            assert!(e.starts_with(cause), "{w:?}: {e}");
            // donor_ok changes nothing but the donor's verdict.
            let donor = w.local_state.as_deref() == Some("2");
            assert_eq!(verdict(&w, None, true).is_ok(), donor, "{w:?}");
        }
        // A non-Primary donor stays down even with donor_ok.
        let mut w = synced();
        w.local_state = Some("2".into());
        w.cluster_status = Some("non-Primary".into());
        assert!(verdict(&w, None, true).is_err());
        let mut w = synced();
        (w.local_state, w.local_state_comment) = (Some("3".into()), None);
        assert_eq!(verdict(&w, None, true), Err("Joined (wsrep_local_state=3)".into()));
    }

    #[test]
    fn read_only_counts_only_when_asked() {
        assert_eq!(verdict(&synced(), Some(true), false), Err("read_only=ON".into()));
        assert_eq!(verdict(&synced(), None, false), Ok(()));
    }
}
