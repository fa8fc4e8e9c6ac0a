//! etcd v3 through its JSON gRPC gateway, over [`HttpConnection`].
//!
//! `POST <prefix>kv/put {"key": b64, "value": b64}` writes, and
//! `POST <prefix>kv/range {"key": b64}` reads; a range without
//! `"serializable": true` is linearizable (etcd confirms its leadership with a
//! quorum before answering), which is the read quorum's server offers too.
//!
//! The gateway's prefix depends on etcd's version: `/v3/` from 3.4 on (3.4,
//! Debian bookworm's `etcd-server`, still answers the deprecated `/v3beta/`),
//! `/v3beta/` in 3.3, `/v3alpha/` in 3.2. [`EtcdClient::detect`] probes them
//! in that order and keeps the first that is not a 404.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;

use crate::http::{HttpConnection, HttpError, Response};

/// Gateway prefixes, newest first.
pub const GATEWAY_PREFIXES: [&str; 3] = ["/v3/", "/v3beta/", "/v3alpha/"];

/// The key [`EtcdClient::detect`] reads to find the gateway.
const PROBE_KEY: &[u8] = b"quorum-bench-probe";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The connection failed; it has been dropped and the next request reconnects.
    #[error("{0}")]
    Http(#[from] HttpError),
    /// etcd answered with an error (or with something that is not its JSON).
    #[error("etcd answered HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// No gateway prefix answered.
    #[error("no etcd JSON gateway at {addr} (tried {GATEWAY_PREFIXES:?}): {detail}")]
    NoGateway { addr: String, detail: String },
}

impl EtcdError {
    /// True when the server answered: the connection is still good.
    pub fn is_rejection(&self) -> bool {
        matches!(self, EtcdError::Rejected { .. })
    }
}

#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct GatewayError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// One keep-alive connection to one etcd member's gateway.
#[derive(Debug)]
pub struct EtcdClient {
    addr: String,
    prefix: &'static str,
    connection: Option<HttpConnection>,
    body: Vec<u8>,
}

impl EtcdClient {
    /// Connect to `addr` using a known gateway `prefix` (one of [`GATEWAY_PREFIXES`]).
    pub async fn connect(addr: &str, prefix: &'static str) -> Result<EtcdClient, EtcdError> {
        let connection = HttpConnection::connect(addr).await?;
        Ok(EtcdClient { addr: addr.to_string(), prefix, connection: Some(connection), body: Vec::new() })
    }

    /// Connect to `addr` and find its gateway prefix by reading a probe key.
    pub async fn detect(addr: &str) -> Result<EtcdClient, EtcdError> {
        let mut detail = String::new();
        for prefix in GATEWAY_PREFIXES {
            let mut client = EtcdClient::connect(addr, prefix).await?;
            match client.range(PROBE_KEY).await {
                Ok(_) => return Ok(client),
                Err(EtcdError::Rejected { status: 404, message }) => {
                    detail = format!("{prefix}kv/range: HTTP 404 {message}");
                }
                Err(error) => return Err(error),
            }
        }
        Err(EtcdError::NoGateway { addr: addr.to_string(), detail })
    }

    /// The gateway prefix in use.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// Write `value` at `key`.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EtcdError> {
        self.body.clear();
        serde_json::to_writer(
            &mut self.body,
            &serde_json::json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) }),
        )
        .map_err(|error| rejected(0, error.to_string()))?;
        let response = self.post("kv/put").await?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&response.body)
            .map_err(|_| rejected(response.status, "put answer is not JSON".to_string()))?;
        Ok(())
    }

    /// Read `key` linearizably: `None` if absent.
    pub async fn range(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, EtcdError> {
        self.body.clear();
        serde_json::to_writer(&mut self.body, &serde_json::json!({ "key": BASE64.encode(key) }))
            .map_err(|error| rejected(0, error.to_string()))?;
        let response = self.post("kv/range").await?;
        let parsed: RangeResponse = serde_json::from_slice(&response.body)
            .map_err(|_| rejected(response.status, "range answer is not etcd's JSON".to_string()))?;
        match parsed.kvs.into_iter().next() {
            None => Ok(None),
            // etcd omits empty fields in JSON, so an empty value has no "value".
            Some(kv) => BASE64
                .decode(kv.value.unwrap_or_default())
                .map(Some)
                .map_err(|_| rejected(response.status, "range value is not base64".to_string())),
        }
    }

    /// POST the prepared body to `<prefix><path>`; a non-200 answer is a
    /// rejection carrying etcd's message.
    async fn post(&mut self, path: &str) -> Result<Response, EtcdError> {
        let connection = match self.connection.as_mut() {
            Some(connection) => connection,
            None => self.connection.insert(HttpConnection::connect(&self.addr).await?),
        };
        let path = format!("{}{}", self.prefix, path);
        let response = match connection.post_json(&path, &self.body).await {
            Ok(response) => response,
            Err(error) => {
                self.connection = None;
                return Err(error.into());
            }
        };
        if !response.keep_alive {
            self.connection = None;
        }
        if response.status != 200 {
            return Err(rejected(response.status, error_message(&response.body)));
        }
        Ok(response)
    }
}

fn rejected(status: u16, message: String) -> EtcdError {
    EtcdError::Rejected { status, message }
}

/// etcd's gateway errors are `{"error": .., "message": .., "code": ..}`;
/// anything else (a plain-text 404) is shown as text, shortened.
fn error_message(body: &[u8]) -> String {
    if let Ok(error) = serde_json::from_slice::<GatewayError>(body) {
        if let Some(message) = error.message.or(error.error) {
            return message;
        }
    }
    let text = String::from_utf8_lossy(body);
    text.trim().chars().take(200).collect()
}
