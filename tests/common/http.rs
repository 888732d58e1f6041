//! A small HTTP/1.1 client for the web server's tests: one request per
//! connection, cookies and headers by hand, so a test says exactly what a
//! browser or a script would send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a cookie this response sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Send one request; blocking, so call it through [`send`] from a test.
pub fn request_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<(String, Vec<u8>)>,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body_bytes = match &body {
        Some((content_type, bytes)) => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
            bytes.clone()
        }
        None => {
            if method != "GET" {
                head.push_str("Content-Length: 0\r\n");
            }
            Vec::new()
        }
    };
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(&body_bytes).expect("send body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    Response {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
        headers,
    }
}

/// Send one request from an async test.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Response {
    let (method, path) = (method.to_string(), path.to_string());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = body.map(|(t, b)| (t.to_string(), b.as_bytes().to_vec()));
    tokio::task::spawn_blocking(move || request_blocking(addr, &method, &path, &headers, body))
        .await
        .expect("request task")
}

/// A browser signed in through the form: its session cookie and the CSRF
/// token its pages carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    pub fn cookie_header(&self) -> String {
        format!("clerk_session={}", self.cookie)
    }
}

/// The value of `name="…" value="…"` in a page.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + "value=\"".len();
    Some(rest[v..].split('"').next()?.to_string())
}

/// The sign-in form's answer for `name` and `password`.
pub async fn sign_in_response(addr: SocketAddr, name: &str, password: &str) -> Response {
    let form = send(addr, "GET", "/login", &[], None).await;
    let nonce = form
        .cookie("clerk_login")
        .expect("the form sets its cookie");
    assert_eq!(
        form_value(&form.body, "login_token").as_deref(),
        Some(nonce.as_str())
    );
    let body = serde_urlencoded::to_string([
        ("name", name),
        ("password", password),
        ("login_token", &nonce),
        ("next", "/reviews"),
    ])
    .expect("form");
    let cookie = format!("clerk_login={nonce}");
    send(
        addr,
        "POST",
        "/login",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", &body)),
    )
    .await
}

/// Sign in through the form, as a browser does.
pub async fn sign_in(addr: SocketAddr, name: &str, password: &str) -> Session {
    let done = sign_in_response(addr, name, password).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let cookie = done.cookie("clerk_session").expect("a session cookie");
    let set = done
        .headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("clerk_session="))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let page = send(
        addr,
        "GET",
        "/reviews",
        &[("Cookie", &format!("clerk_session={cookie}"))],
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let at = page
        .body
        .find("name=\"csrf-token\" content=\"")
        .expect("csrf meta")
        + 27;
    let csrf = page.body[at..].split('"').next().unwrap().to_string();
    Session { cookie, csrf }
}
