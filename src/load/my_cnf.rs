//! MySQL option files (`~/.my.cnf`, clustercheck's credentials): the `user` and `password` of
//! their `[client]` group, for the `galera` and `mysql` checks.
//!
//! The format as the MySQL and MariaDB clients read it: `[group]` lines, `name = value` or a bare
//! `name`, comments from `#` or `;` at a line's start and from `#` after a value, values in single
//! or double quotes with backslash escapes, and `-` and `_` alike in names.

/// The login of a `[client]` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLogin {
    pub user: String,
    pub password: String,
}

/// Reads the `[client]` user and password of an option file's text; errors say the line.
pub fn client_login(text: &str) -> Result<ClientLogin, String> {
    let mut group = String::new();
    let mut saw_client = false;
    let (mut user, mut password) = (None, None);
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('!') {
            return Err(format!(
                "line {line_no}: {} is not followed here; put the user and password in this file",
                line.split_whitespace().next().unwrap_or(line)
            ));
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.split_once(']').map(|(g, _)| g.trim()) else {
                return Err(format!("line {line_no}: a group header needs its closing ']'"));
            };
            group = name.to_ascii_lowercase();
            saw_client |= group == "client";
            continue;
        }
        if group.is_empty() {
            return Err(format!("line {line_no}: an option before any [group]"));
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (line, None),
        };
        if group != "client" {
            continue;
        }
        let key = name.replace('-', "_").to_ascii_lowercase();
        if key != "user" && key != "password" {
            continue;
        }
        let Some(value) = value else {
            return Err(format!("line {line_no}: {key} needs a value ({key}=...)"));
        };
        let value = unquote(value).map_err(|m| format!("line {line_no}: {key}: {m}"))?;
        if key == "user" {
            user = Some(value);
        } else {
            password = Some(value);
        }
    }
    if !saw_client {
        return Err("no [client] group (the monitoring user goes in [client], with user= and password=)".into());
    }
    match (user, password) {
        (Some(user), _) if user.is_empty() => Err("user is empty".into()),
        (Some(user), Some(password)) => Ok(ClientLogin { user, password }),
        (None, _) => Err("[client] has no user=".into()),
        (Some(_), None) => Err("[client] has no password= (an empty one is written password=\"\")".into()),
    }
}

/// A value as written after `=`: quoted (escapes as MySQL reads them, anything after the
/// closing quote but a comment is an error) or bare (up to a `#` comment, trimmed).
fn unquote(v: &str) -> Result<String, String> {
    let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        let bare = v.split_once('#').map_or(v, |(a, _)| a);
        return Ok(bare.trim_end().to_string());
    };
    let mut out = String::new();
    let mut chars = v[1..].chars();
    loop {
        match chars.next() {
            None => return Err(format!("no closing {q}")),
            Some(c) if c == q => break,
            Some('\\') => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('s') => out.push(' '),
                Some(c) => out.push(c),
                None => return Err(format!("no closing {q}")),
            },
            Some(c) => out.push(c),
        }
    }
    let rest = chars.as_str().trim_start();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("unexpected {rest:?} after the closing quote"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(t: &str) -> Result<(String, String), String> {
        client_login(t).map(|l| (l.user, l.password))
    }

    #[test]
    fn reads_client_group() {
        let text =
            "# clustercheck\n[mysqld]\nuser=mysql\n\n[client]\nuser = weiche\npassword = s3cret # set by ansible\n";
        assert_eq!(login(text), Ok(("weiche".into(), "s3cret".into())));
        // Quotes keep '#' and spaces; escapes as the mysql client reads them; later wins.
        let text = "[client]\nuser=a\n[client]\nuser='mon itor'\npassword=\"p#w\\\"x\\s\" # note\n";
        assert_eq!(login(text), Ok(("mon itor".into(), "p#w\"x ".into())));
        assert_eq!(login("[CLIENT]\nUser=u\npassword=\"\"\n"), Ok(("u".into(), String::new())));
        assert_eq!(login("[client]\r\nuser=u\r\npassword=p\r\n"), Ok(("u".into(), "p".into())));
    }

    #[test]
    fn says_what_is_wrong() {
        for (text, msg) in [
            ("user=u\n", "line 1: an option before any [group]"),
            ("[mysqld]\nuser=u\n", "no [client] group"),
            ("[client]\npassword=p\n", "[client] has no user="),
            ("[client]\nuser=u\n", "[client] has no password="),
            ("[client]\nuser\n", "line 2: user needs a value"),
            ("[client]\nuser=u\npassword='p\n", "line 3: password: no closing '"),
            ("[client]\nuser=u\npassword='p' x\n", "line 3: password: unexpected \"x\" after the closing quote"),
            ("!include /etc/mysql/debian.cnf\n", "line 1: !include is not followed here"),
            ("[client\n", "line 1: a group header needs its closing ']'"),
            ("[client]\nuser=\npassword=p\n", "user is empty"),
        ] {
            let e = client_login(text).unwrap_err();
            assert!(e.starts_with(msg), "{text:?}: {e}");
        }
    }
}
