//! `[sinks.mqtt]`: the settings, their checks, and the rumqttc options built
//! from them (broker address, credentials, last will, TLS with rustls + ring).

use anyhow::{bail, Context, Result};
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `[sinks.mqtt]`. Every key but `url` has a default; see `docs/mqtt.md`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (port 1883) or `mqtts://host[:port]` (TLS, port 8883).
    pub url: String,
    /// MQTT client id; default `edgeseg-<device>`. Must be unique per broker.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Password in the config itself; prefer `password_file` on shared machines.
    #[serde(default)]
    pub password: Option<String>,
    /// File whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// QoS of detections and stats: 0, 1 or 2. Status is always QoS 1.
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// First topic level: `<topic_prefix>/<device>/{detections,status,stats}`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Seconds between pings; 0 disables keep-alive (then a dead link is only
    /// noticed on the next write). The broker fires the last will after 1.5×.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Messages held while the broker is unreachable; the oldest go first when full.
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Largest message (topic + payload) accepted, KiB; larger reports are refused.
    #[serde(default = "default_max_message_kib")]
    pub max_message_kib: usize,
    /// Publish the periodic stats document on `<prefix>/<device>/stats`.
    #[serde(default = "default_true")]
    pub stats: bool,
    /// CA bundle (PEM) that signs the broker's certificate (`mqtts://` only);
    /// default: the system bundle (/etc/ssl/certs/ca-certificates.crt, ...).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

fn default_qos() -> u8 {
    1
}
fn default_topic_prefix() -> String {
    "edgeseg".to_string()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_queue_limit() -> usize {
    1000
}
fn default_max_message_kib() -> usize {
    1024
}
fn default_true() -> bool {
    true
}

/// System CA bundles, Debian/Ubuntu/Alpine first, then Fedora/RHEL, then others.
const SYSTEM_CA_FILES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// Where the broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl MqttConfig {
    /// A config with every default and the given broker URL.
    pub fn new(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.to_string(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            qos: default_qos(),
            topic_prefix: default_topic_prefix(),
            keep_alive_s: default_keep_alive(),
            queue_limit: default_queue_limit(),
            max_message_kib: default_max_message_kib(),
            stats: true,
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }

    /// The same config with relative file paths resolved against `base`
    /// (the config file's directory).
    pub fn resolved(&self, base: &Path) -> MqttConfig {
        let fix = |p: &Option<PathBuf>| p.as_ref().map(|p| crate::source::resolve_path(base, p));
        MqttConfig {
            password_file: fix(&self.password_file),
            ca_file: fix(&self.ca_file),
            client_cert: fix(&self.client_cert),
            client_key: fix(&self.client_key),
            ..self.clone()
        }
    }

    /// Parse `url`; errors name the key and the fix.
    pub fn broker(&self) -> Result<BrokerUrl> {
        parse_url(&self.url)
    }

    pub fn qos_level(&self) -> Result<QoS> {
        match self.qos {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            q => bail!("key sinks.mqtt.qos = {q} is not an MQTT QoS; fix: use 0, 1 or 2"),
        }
    }

    /// Every check that needs no network: URL, QoS, topic prefix, limits, credentials.
    pub fn check(&self, device: &str) -> Result<()> {
        self.broker()?;
        self.qos_level()?;
        let p = &self.topic_prefix;
        if p.is_empty() || p.contains(['+', '#', '\0']) || p.starts_with('/') || p.ends_with('/') {
            bail!(
                "key sinks.mqtt.topic_prefix = {p:?} is not a usable topic prefix; \
                 fix: use non-empty levels without '+', '#' or a leading/trailing '/', e.g. \"edgeseg\" or \"plant1/line3\""
            );
        }
        if device.is_empty() || device.contains(['/', '+', '#', '\0']) {
            bail!("device name {device:?} is not a single MQTT topic level; fix: set key device.name to letters, digits, '-', '_' or '.'");
        }
        if self.keep_alive_s > u16::MAX as u64 {
            bail!("key sinks.mqtt.keep_alive_s = {} exceeds MQTT's 65535 s; fix: use 0 (off) or 1..=65535, e.g. 30", self.keep_alive_s);
        }
        if self.queue_limit == 0 {
            bail!("key sinks.mqtt.queue_limit = 0; fix: use 1 or more (e.g. 1000 messages held while the broker is unreachable)");
        }
        if self.max_message_kib == 0 || self.max_message_kib > 256 * 1024 {
            bail!("key sinks.mqtt.max_message_kib = {} is out of range; fix: use 1..=262144 (default 1024)", self.max_message_kib);
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 256 {
                bail!("key sinks.mqtt.client_id must be 1-256 characters; fix: remove it to use edgeseg-<device>");
            }
        }
        if self.password.is_some() && self.password_file.is_some() {
            bail!("keys sinks.mqtt.password and sinks.mqtt.password_file are both set; fix: keep only one");
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            bail!("key sinks.mqtt.password is set without sinks.mqtt.username; fix: add username (MQTT 3.1.1 sends no password without a user name)");
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            bail!("keys sinks.mqtt.client_cert and sinks.mqtt.client_key go together; fix: set both (mutual TLS) or neither");
        }
        let tls_keys = self.ca_file.is_some() || self.client_cert.is_some();
        if tls_keys && !self.broker()?.tls {
            bail!("key sinks.mqtt.ca_file/client_cert is set but sinks.mqtt.url = {:?} is plain TCP; fix: use mqtts://host:8883 or remove the TLS keys", self.url);
        }
        Ok(())
    }

    pub fn client_id_for(&self, device: &str) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("edgeseg-{device}"))
    }

    fn password_value(&self) -> Result<Option<String>> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        let Some(file) = &self.password_file else { return Ok(None) };
        let text = std::fs::read_to_string(file).with_context(|| {
            format!("key sinks.mqtt.password_file: cannot read {}; fix: point it at a readable file holding the password", file.display())
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }

    /// rumqttc options: address, client id, keep-alive, credentials, last will, TLS.
    /// `clean_session` stays true: the sink re-sends unacknowledged messages
    /// itself (a restarted broker without persistence has no session to resume).
    pub fn mqtt_options(&self, device: &str, will: LastWill) -> Result<MqttOptions> {
        self.check(device)?;
        let broker = self.broker()?;
        let mut o = MqttOptions::new(self.client_id_for(device), broker.host.clone(), broker.port);
        // Whole seconds are always >= 1 s or zero, the only values rumqttc accepts;
        // check() bounds them to the u16 of the CONNECT packet.
        o.set_keep_alive(Duration::from_secs(self.keep_alive_s));
        o.set_clean_session(true);
        let max = self.max_message_kib * 1024;
        o.set_max_packet_size(max.max(64 * 1024), max + 1024);
        o.set_last_will(will);
        if let (Some(user), pass) = (&self.username, self.password_value()?) {
            o.set_credentials(user.clone(), pass.unwrap_or_default());
        }
        if broker.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(self.tls_config()?))));
        }
        Ok(o)
    }

    /// rustls client config on the ring provider.
    pub fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let ca_file = match &self.ca_file {
            Some(f) => f.clone(),
            None => SYSTEM_CA_FILES.iter().map(PathBuf::from).find(|p| p.is_file()).with_context(|| {
                format!("key sinks.mqtt.ca_file is not set and no system CA bundle exists ({}); fix: set ca_file to the PEM file of the CA that signed the broker's certificate", SYSTEM_CA_FILES.join(", "))
            })?,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = read_certs(&ca_file, "ca_file")?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!("key sinks.mqtt.ca_file: {} holds no usable CA certificate; fix: use a PEM file with -----BEGIN CERTIFICATE----- blocks", ca_file.display());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("key sinks.mqtt.url: rustls rejected its default TLS versions; fix: report this as a bug")?
            .with_root_certificates(roots);
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "client_cert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    anyhow::anyhow!("key sinks.mqtt.client_key: cannot read a private key from {}: {e}; fix: use a PEM key (PKCS#8, PKCS#1 or SEC1) matching client_cert", key.display())
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    anyhow::anyhow!("keys sinks.mqtt.client_cert/client_key: {e}; fix: use a certificate and the private key that belongs to it")
                })
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let fail = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!("key sinks.mqtt.{key}: cannot read certificates from {}: {e}; fix: point it at a readable PEM file", path.display())
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path).map_err(|e| fail(&e))?.collect::<Result<_, _>>().map_err(|e| fail(&e))?;
    if certs.is_empty() {
        return Err(fail(&"no -----BEGIN CERTIFICATE----- block"));
    }
    Ok(certs)
}

/// `mqtt://host[:port]`, `mqtts://host[:port]`; IPv6 hosts in brackets.
pub fn parse_url(url: &str) -> Result<BrokerUrl> {
    let fix = "fix: write it as mqtt://host:1883 (plain TCP) or mqtts://host:8883 (TLS)";
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("key sinks.mqtt.url = {url:?} has no scheme; {fix}");
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => bail!("key sinks.mqtt.url = {url:?}: scheme {other:?} is not supported; {fix}"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        bail!("key sinks.mqtt.url = {url:?} carries credentials; fix: put them in sinks.mqtt.username and sinks.mqtt.password(_file)");
    }
    if rest.contains(['/', '?', '#']) {
        bail!("key sinks.mqtt.url = {url:?} has a path or query; {fix}");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else { bail!("key sinks.mqtt.url = {url:?}: unclosed '[' in IPv6 host; {fix}") };
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        bail!("key sinks.mqtt.url = {url:?} has no host; {fix}");
    }
    let port = match port {
        None => {
            if tls {
                8883
            } else {
                1883
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => bail!("key sinks.mqtt.url = {url:?}: port {p:?} is not 1-65535; {fix}"),
        },
    };
    Ok(BrokerUrl { tls, host: host.to_string(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("mqtt://broker").unwrap(), BrokerUrl { tls: false, host: "broker".into(), port: 1883 });
        assert_eq!(parse_url("mqtts://broker").unwrap().port, 8883);
        assert_eq!(parse_url("mqtt://10.0.0.2:1884/").unwrap(), BrokerUrl { tls: false, host: "10.0.0.2".into(), port: 1884 });
        assert_eq!(parse_url("mqtts://[::1]:8884").unwrap(), BrokerUrl { tls: true, host: "::1".into(), port: 8884 });
        for bad in ["http://x", "broker:1883", "mqtt://", "mqtt://x:0", "mqtt://x:99999", "mqtt://u:p@x", "mqtt://x/topic"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("sinks.mqtt.url") && e.contains("fix:"), "{bad}: {e}");
        }
    }

    #[test]
    fn checks_name_key_and_fix() {
        let base = MqttConfig::new("mqtt://localhost");
        let cases: Vec<(MqttConfig, &str)> = vec![
            (MqttConfig { qos: 3, ..base.clone() }, "sinks.mqtt.qos"),
            (MqttConfig { topic_prefix: "a/#".into(), ..base.clone() }, "sinks.mqtt.topic_prefix"),
            (MqttConfig { queue_limit: 0, ..base.clone() }, "sinks.mqtt.queue_limit"),
            (MqttConfig { password: Some("p".into()), ..base.clone() }, "sinks.mqtt.username"),
            (MqttConfig { ca_file: Some("ca.pem".into()), ..base.clone() }, "mqtts://"),
            (MqttConfig { client_key: Some("k.pem".into()), url: "mqtts://h".into(), ..base.clone() }, "client_cert"),
        ];
        for (c, want) in cases {
            let e = c.check("dev").unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("fix:"), "{e}");
        }
        base.check("dev").unwrap();
    }

    #[test]
    fn toml_defaults_and_unknown_keys() {
        let c: MqttConfig = toml::from_str("url = \"mqtt://h\"").unwrap();
        assert_eq!(c, MqttConfig::new("mqtt://h"));
        assert!(toml::from_str::<MqttConfig>("url = \"mqtt://h\"\nqso = 1").is_err());
    }

    #[test]
    fn missing_tls_files_are_named() {
        let c = MqttConfig { url: "mqtts://h".into(), ca_file: Some("/nonexistent/ca.pem".into()), ..MqttConfig::new("") };
        let e = c.tls_config().unwrap_err().to_string();
        assert!(e.contains("sinks.mqtt.ca_file") && e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
