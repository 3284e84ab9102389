//! TSIG keys (RFC 8945) as `weiche.toml` names them: inline, or from a BIND key file.

use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

use crate::model::name::Name;

#[derive(Clone)]
pub struct Key {
    /// The key's name, as on the wire.
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub(crate) secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} {})", self.name, self.algorithm.to_name())
    }
}

pub fn algorithm(name: &str) -> Option<TsigAlgorithm> {
    match name.trim_end_matches('.').to_ascii_lowercase().as_str() {
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

impl Key {
    pub fn new(name: &str, algorithm_name: &str, secret_b64: &str) -> Result<Key, String> {
        let algorithm = algorithm(algorithm_name).ok_or_else(|| {
            format!("TSIG algorithm {algorithm_name:?} is not supported (hmac-sha256, hmac-sha384, hmac-sha512)")
        })?;
        let secret = data_encoding::BASE64
            .decode(secret_b64.trim().as_bytes())
            .map_err(|_| "the TSIG secret is not valid base64".to_string())?;
        if secret.is_empty() {
            return Err("the TSIG secret is empty".into());
        }
        let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
        let name = Name::parse(&fqdn, None).map_err(|e| format!("key name: {e}"))?;
        Ok(Key { name, algorithm, secret })
    }

    /// Reads a BIND-style key file: `key "name" { algorithm hmac-sha256; secret "…"; };`
    pub fn from_bind_file(text: &str) -> Result<Key, String> {
        let text: String =
            text.lines().map(|l| l.split(['#', ';']).next().map_or("", |_| l)).collect::<Vec<_>>().join("\n");
        let after_key = text.split_once("key").ok_or("no `key \"name\" { … }` block")?.1;
        let (name_part, body) = after_key.split_once('{').ok_or("no `{` after the key name")?;
        let name = name_part.trim().trim_matches('"');
        let field = |f: &str| {
            body.split(';')
                .map(str::trim)
                .find_map(|stmt| stmt.strip_prefix(f))
                .map(|v| v.trim().trim_matches('"').to_string())
        };
        let alg = field("algorithm").ok_or("no `algorithm …;` in the key")?;
        let secret = field("secret").ok_or("no `secret \"…\";` in the key")?;
        Key::new(name, &alg, &secret)
    }

    pub(crate) fn mac(&self, data: &[u8]) -> Vec<u8> {
        self.algorithm.mac_data(&self.secret, data).expect("supported algorithm")
    }
}
