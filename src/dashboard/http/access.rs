//! Who may talk to the server, decided from the request head alone (before any
//! body is read): the token when one is set; without one (loopback-only mode)
//! only requests addressed to this machine by a loopback name, so a web page
//! the operator visits cannot reach the dashboard through DNS rebinding. A
//! state-changing request from a browser must come from the dashboard's own origin.

use super::{HttpError, Request};
use std::net::SocketAddr;

pub struct Access {
    token: Option<String>,
    /// Without a token: the `Host` values accepted (lower case).
    hosts: Vec<String>,
}

/// Methods that change nothing (RFC 9110 §9.2.1): no Origin check.
fn safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

impl Access {
    /// `local`: the address the server listens on.
    pub fn new(token: Option<String>, local: SocketAddr) -> Access {
        let port = local.port();
        let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"].iter().map(|h| format!("{h}:{port}")).collect();
        let own = match local {
            SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
            SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
        };
        if !local.ip().is_unspecified() && !hosts.contains(&own) {
            hosts.push(own);
        }
        // The port may be left out when it is the default one.
        if port == 80 {
            hosts.extend(["127.0.0.1", "localhost", "[::1]"].iter().map(|h| h.to_string()));
        }
        Access { token, hosts }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Host, then Origin, then the token.
    pub fn check(&self, req: &Request) -> Result<(), HttpError> {
        let host = req.header("host").map(|h| h.to_ascii_lowercase());
        if self.token.is_none() {
            self.check_loopback_host(host.as_deref())?;
        }
        if !safe_method(&req.method) {
            self.check_origin(req, host.as_deref())?;
        }
        if let Some(token) = &self.token {
            if !super::auth::authorised(req, token) {
                return Err(HttpError::new(401, "this dashboard needs the token of key dashboard.token", "send `Authorization: Bearer TOKEN`, or log in with any user name and the token as password"));
            }
        }
        Ok(())
    }

    fn check_loopback_host(&self, host: Option<&str>) -> Result<(), HttpError> {
        match host {
            // HTTP/1.0 without Host: not a browser (the parser requires Host for HTTP/1.1).
            None => Ok(()),
            Some(h) if self.hosts.iter().any(|a| a == h) => Ok(()),
            Some(h) => Err(HttpError::new(
                421,
                format!("this dashboard has no token, so it answers only requests addressed to this machine; Host {h:?} is not {}", self.hosts.join(", ")),
                format!("open http://{}/ on this machine, or set dashboard.token (--token for the fleet view) to serve other names", self.hosts[0]),
            )),
        }
    }

    /// A browser sends `Origin` with cross-site requests: it must be the dashboard itself.
    fn check_origin(&self, req: &Request, host: Option<&str>) -> Result<(), HttpError> {
        let Some(origin) = req.header("origin") else { return Ok(()) };
        let origin = origin.to_ascii_lowercase();
        let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        let ok = match (authority, host) {
            (Some(a), _) if self.token.is_none() => self.hosts.iter().any(|h| h == a),
            (Some(a), Some(h)) => a == h,
            _ => false,
        };
        if ok {
            return Ok(());
        }
        Err(HttpError::new(
            403,
            format!("{} {} from the web page at {origin:?}, which is not this dashboard", req.method, req.path),
            "send it from the dashboard's own page, or from a client that is not a browser (curl sends no Origin)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Request { method: method.into(), path: "/api/segment".into(), headers, http11: true, ..Request::default() }
    }

    /// Issue 24 item 14: without a token any Host was answered (DNS rebinding).
    #[test]
    fn without_a_token_only_loopback_hosts_are_answered() {
        let a = Access::new(None, "127.0.0.1:8080".parse().unwrap());
        for ok in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080"] {
            assert!(a.check(&req("GET", &[("host", ok)])).is_ok(), "{ok}");
        }
        for bad in ["evil.example:8080", "evil.example", "127.0.0.1:9999", "127.0.0.1", "localhost.:8080", "10.0.0.5:8080"] {
            let e = a.check(&req("GET", &[("host", bad)])).unwrap_err();
            assert_eq!(e.status, 421, "{bad}");
            assert!(e.fix.contains("dashboard.token"), "{}", e.fix);
        }
        // The configured address counts too.
        let other = Access::new(None, "127.0.0.2:8080".parse().unwrap());
        assert!(other.check(&req("GET", &[("host", "127.0.0.2:8080")])).is_ok());
        // With a token the name does not matter (the token does).
        let t = Access::new(Some("s3cret-token".into()), "0.0.0.0:8080".parse().unwrap());
        assert!(t.check(&req("GET", &[("host", "line1.factory.lan:8080"), ("authorization", "Bearer s3cret-token")])).is_ok());
        assert_eq!(t.check(&req("GET", &[("host", "line1.factory.lan:8080")])).unwrap_err().status, 401);
    }

    #[test]
    fn state_changing_requests_must_come_from_the_dashboard_itself() {
        let a = Access::new(None, "127.0.0.1:8080".parse().unwrap());
        let host = ("host", "127.0.0.1:8080");
        assert!(a.check(&req("POST", &[host])).is_ok(), "no Origin: curl");
        assert!(a.check(&req("POST", &[host, ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(a.check(&req("POST", &[host, ("origin", "http://localhost:8080")])).is_ok());
        for bad in ["http://evil.example", "null", "http://127.0.0.1:9999", "file://"] {
            assert_eq!(a.check(&req("POST", &[host, ("origin", bad)])).unwrap_err().status, 403, "{bad}");
        }
        // GET is not state-changing.
        assert!(a.check(&req("GET", &[host, ("origin", "http://evil.example")])).is_ok());
        let t = Access::new(Some("s3cret-token".into()), "0.0.0.0:8080".parse().unwrap());
        let auth = ("authorization", "Bearer s3cret-token");
        let lan = ("host", "line1.lan:8080");
        assert!(t.check(&req("POST", &[lan, auth, ("origin", "http://line1.lan:8080")])).is_ok());
        assert_eq!(t.check(&req("POST", &[lan, auth, ("origin", "http://evil.example")])).unwrap_err().status, 403);
    }
}
