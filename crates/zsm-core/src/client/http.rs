//! Requests to the gateway: authsvc under /auth, PostgREST under /rest, with
//! token refresh and one retry (as the Go SDK's `rest` and `authed` do).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{Client, Tokens};
use crate::error::{Error, tamper};

/// Refresh the access token when it expires within this margin.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Largest answer read from authsvc.
const AUTH_LIMIT: usize = 1 << 20;
/// Largest answer read from PostgREST.
const REST_LIMIT: usize = 256 << 20;

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: String,
}

/// Sends one request and reads at most `limit` bytes of the answer.
pub(crate) async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
    prefer: Option<&str>,
    limit: usize,
) -> Result<(StatusCode, Vec<u8>), Error> {
    let mut req = http.request(method, url).header("Accept", "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(b).expect("JSON values serialize"));
    }
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    let mut resp = req.send().await?;
    let status = resp.status();
    let mut data = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if data.len() + chunk.len() > limit {
            return Err(tamper(format!("an answer larger than {limit} bytes")));
        }
        data.extend_from_slice(&chunk);
    }
    Ok((status, data))
}

/// An error answer of authsvc as [`Error::Api`].
pub(crate) fn api_error(status: StatusCode, data: &[u8]) -> Error {
    let mut e: ErrorBody = serde_json::from_slice(data).unwrap_or_default();
    if e.code.is_empty() {
        e.code = "http_error".into();
        e.message = status.canonical_reason().unwrap_or("error").into();
    }
    Error::Api {
        status: status.as_u16(),
        code: e.code,
        message: e.message,
        request_id: e.request_id,
    }
}

/// Maps authsvc's answers to the client's errors (the Go SDK's apiError).
pub(crate) fn map_api(e: Error) -> Error {
    match &e {
        Error::Api { code, .. } => match code.as_str() {
            "login_failed" => Error::LoginFailed,
            "identity_unavailable" => Error::Exists("the identity is taken".into()),
            "invalid_refresh_token" | "session_revoked" | "token_expired" => Error::SessionExpired,
            _ => e,
        },
        _ => e,
    }
}

/// A JSON call to authsvc without a token.
pub(crate) async fn auth_call<T: DeserializeOwned>(
    http: &reqwest::Client,
    server: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<T, Error> {
    let (status, data) = send(
        http,
        Method::POST,
        &format!("{server}{path}"),
        None,
        Some(body),
        None,
        AUTH_LIMIT,
    )
    .await?;
    let data = Zeroizing::new(data);
    if status.as_u16() >= 300 {
        return Err(api_error(status, &data));
    }
    serde_json::from_slice(&data).map_err(|e| tamper(format!("malformed answer to {path}: {e}")))
}

#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    pub session_id: String,
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
}

impl Client {
    /// Rotates the tokens if the access token is still `stale`; concurrent
    /// callers share one refresh, since a refresh token works once and a
    /// second use would revoke the session.
    pub(crate) async fn refresh_if(&self, stale: &str) -> Result<(), Error> {
        let mut t = self.tokens.lock().await;
        if *t.access != stale {
            return Ok(()); // someone else refreshed meanwhile
        }
        let body = serde_json::json!({ "refresh_token": &*t.refresh });
        let started = Instant::now();
        let ans: TokenAnswer = auth_call(&self.http, &self.server, "/auth/v1/token/refresh", &body)
            .await
            .map_err(map_api)?;
        *t = Tokens::from_answer(ans, started);
        Ok(())
    }

    async fn fresh_token(&self) -> Result<Zeroizing<String>, Error> {
        let (token, expiry) = {
            let t = self.tokens.lock().await;
            (t.access.clone(), t.expiry)
        };
        if Instant::now() + REFRESH_MARGIN > expiry {
            self.refresh_if(&token).await?;
            return Ok(self.tokens.lock().await.access.clone());
        }
        Ok(token)
    }

    /// A request to PostgREST (under /rest) with the access token,
    /// refreshed first when it is about to expire and once more if the
    /// server says it has. `None` for an empty answer.
    pub(crate) async fn rest<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        prefer: Option<&str>,
    ) -> Result<Option<T>, Error> {
        for attempt in 0.. {
            let token = self.fresh_token().await?;
            let url = format!("{}/rest{path}", self.server);
            let (status, data) = send(&self.http, method.clone(), &url, Some(&token), body, prefer, REST_LIMIT).await?;
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                let e: ErrorBody = serde_json::from_slice(&data).unwrap_or_default();
                if e.code == "session_revoked" {
                    return Err(Error::SessionExpired);
                }
                self.refresh_if(&token).await?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(Error::SessionExpired);
            }
            if status.as_u16() >= 300 {
                let e: ErrorBody = serde_json::from_slice(&data).unwrap_or_default();
                return Err(Error::Rest {
                    status: status.as_u16(),
                    code: e.code,
                    message: e.message,
                });
            }
            if data.is_empty() {
                return Ok(None);
            }
            return serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| tamper(format!("malformed answer from the server: {e}")));
        }
        unreachable!("the loop returns")
    }

    /// [`Client::rest`] for answers that must be a JSON array of rows.
    pub(crate) async fn rows<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        prefer: Option<&str>,
    ) -> Result<Vec<T>, Error> {
        Ok(self.rest(method, path, body, prefer).await?.unwrap_or_default())
    }

    /// A call to authsvc with the access token (sessions, key records),
    /// refreshed first when it is about to expire and once more if authsvc
    /// says it is not valid.
    pub(crate) async fn authed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>, Error> {
        for attempt in 0.. {
            let token = self.fresh_token().await?;
            let url = format!("{}{path}", self.server);
            let (status, data) = send(&self.http, method.clone(), &url, Some(&token), body, None, AUTH_LIMIT).await?;
            if status.as_u16() >= 300 {
                let e = api_error(status, &data);
                if attempt == 0 && matches!(&e, Error::Api { status: 401, code, .. } if code == "invalid_token") {
                    self.refresh_if(&token).await?;
                    continue;
                }
                return Err(e);
            }
            if data.is_empty() {
                return Ok(None);
            }
            return serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| tamper(format!("malformed answer from the server: {e}")));
        }
        unreachable!("the loop returns")
    }
}
