//! The workloads' SSM API client: AWS JSON 1.1 over HTTP/1.1 on loopback, one request per
//! connection, unsigned (the emulator serves unsigned requests in its default region). A few
//! lines over a `TcpStream`, like the fault CLI's, so the emulator links no AWS SDK.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::limits::API_REQUEST_LIMIT;

/// What an SSM API call came back with.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
}

impl Answer {
    /// The error's `__type` without any namespace prefix, for an error answer.
    pub fn error_type(&self) -> Option<&str> {
        if self.status < 300 {
            return None;
        }
        let kind = self.body.get("__type").and_then(Value::as_str)?;
        Some(kind.rsplit('#').next().unwrap_or(kind))
    }

    /// `Ok(body)` for a 2xx answer, else the error in words.
    pub fn ok(self) -> Result<Value, String> {
        if self.status < 300 {
            Ok(self.body)
        } else {
            Err(format!(
                "HTTP {}: {} {}",
                self.status,
                self.error_type().unwrap_or("?"),
                self.body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))
        }
    }
}

/// The emulator's API at an address.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    addr: SocketAddr,
}

impl Client {
    /// A client of the API at `addr`.
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr }
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the endpoint clients are given.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls `operation` with `body`. `Err` only when no HTTP answer came.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Answer, String> {
        tokio::time::timeout(API_REQUEST_LIMIT, self.exchange(operation, body))
            .await
            .map_err(|_| format!("{operation}: no answer within {API_REQUEST_LIMIT:?}"))?
    }

    async fn exchange(&self, operation: &str, body: &Value) -> Result<Answer, String> {
        let failed = |e: std::io::Error| format!("{operation}: {e}");
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(failed)?;
        let body = body.to_string();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             X-Amz-Target: AmazonSSM.{operation}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(failed)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(failed)?;
        parse_response(&response).ok_or_else(|| format!("{operation}: the answer is not HTTP"))
    }
}

/// Status and JSON body of a `Connection: close` HTTP/1.1 answer.
fn parse_response(response: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some(Answer {
        status,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    })
}

/// The data of a chunked body.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_plain_and_chunked() {
        let plain = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 52\r\n\r\n\
            {\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}";
        let answer = parse_response(plain).unwrap();
        assert_eq!(answer.status, 400);
        assert_eq!(answer.error_type(), Some("ThrottlingException"));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
            3\r\n{\"a\r\n5\r\n\":1}\n\r\n0\r\n\r\n";
        let answer = parse_response(chunked).unwrap();
        assert_eq!(answer.body["a"], 1);
        assert_eq!(answer.error_type(), None);
    }
}
