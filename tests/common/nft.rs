//! Real packet loss on loopback: an nftables table of drop rules in the output hook, removed
//! when the guard goes. Tests that run at once use their own table names and addresses.

use std::process::{Command, Stdio};

use super::skip;

/// An nftables table that lives as long as this guard.
pub struct Rules(String);

impl Rules {
    /// Adds table `inet NAME` whose output chain holds `rules` (one nft rule each, such as
    /// `ip saddr 127.0.42.1 ip daddr 127.0.42.2 drop`). None, after [`skip`], when nft cannot
    /// run here (not installed, or not root).
    pub fn add(name: &str, rules: &[String]) -> Option<Rules> {
        let _ = Command::new("nft").args(["delete", "table", "inet", name]).output();
        let body: String = rules.iter().map(|r| format!("  {r}\n")).collect();
        let script =
            format!("table inet {name} {{\n chain out {{\n  type filter hook output priority 0;\n{body} }}\n}}\n");
        let out = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(script.as_bytes())?;
                c.wait_with_output()
            });
        match out {
            Ok(o) if o.status.success() => Some(Rules(name.to_string())),
            Ok(o) => {
                skip(&format!("nft could not add a rule: {}", String::from_utf8_lossy(&o.stderr).trim()));
                None
            }
            Err(e) => {
                skip(&format!("nft cannot run ({e}; apt-get install nftables, as root)"));
                None
            }
        }
    }

    /// Drops every packet both ways between `one` and each of `others`.
    pub fn cut(name: &str, one: &str, others: &[&str]) -> Option<Rules> {
        let others = others.join(", ");
        Rules::add(
            name,
            &[
                format!("ip saddr {one} ip daddr {{ {others} }} drop"),
                format!("ip saddr {{ {others} }} ip daddr {one} drop"),
            ],
        )
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.0]).output();
    }
}
