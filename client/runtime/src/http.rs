//! Requests to a Herald server's routes: JSON POSTs (`/_sse/subscribe`,
//! `/_sse/publish`), what `SSEManager` uses for topic subscriptions and an
//! app to publish from the browser, and GETs (`/_sse/presence`). Outside
//! a browser nothing is sent and the answer has status 0.

use herald_shared::presence::TopicPresence;

pub use crate::config::encode_component;

/// The server's answer: status and body text.
///
/// ```
/// use herald_client::http::Answer;
/// let a = Answer { status: 400, body: r#"{"error":"bad topic"}"#.into() };
/// assert!(!a.ok());
/// assert_eq!(a.error_message(), "bad topic");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status; 0 when the request could not be made.
    pub status: u16,
    /// The body's text.
    pub body: String,
}

impl Answer {
    /// A 2xx status.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error` of a JSON error body (Herald's shape), or the body itself.
    pub fn error_message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.clone())
    }

    fn failed(reason: &str) -> Self {
        Answer {
            status: 0,
            body: serde_json::json!({ "error": reason }).to_string(),
        }
    }
}

/// POSTs `body` as `application/json`, exactly as given: a body that is not
/// valid JSON reaches the server and comes back as its error.
///
/// ```
/// # futures_lite_block_on(async {
/// let answer = herald_client::http::post_json("/_sse/publish", r#"{"data":"hi"}"#.into()).await;
/// assert_eq!(answer.status, 0); // not in a browser: nothing was sent
/// # });
/// # fn futures_lite_block_on(f: impl std::future::Future<Output = ()>) {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     assert!(f.as_mut().poll(&mut cx).is_ready());
/// # }
/// ```
pub async fn post_json(url: &str, body: String) -> Answer {
    fetch(url, Some(body), &[]).await
}

/// [`post_json`] with request headers (`Authorization: Bearer`, ...).
///
/// ```
/// # futures_lite_block_on(async {
/// let token = "a token";
/// let auth = format!("Bearer {token}");
/// let answer = herald_client::http::post_json_with(
///     "/chat/send",
///     r#"{"roomId":"lobby","message":"hi"}"#.into(),
///     &[("Authorization", auth.as_str())],
/// ).await;
/// assert_eq!(answer.status, 0); // not in a browser: nothing was sent
/// # });
/// # fn futures_lite_block_on(f: impl std::future::Future<Output = ()>) {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     assert!(f.as_mut().poll(&mut cx).is_ready());
/// # }
/// ```
pub async fn post_json_with(url: &str, body: String, headers: &[(&str, &str)]) -> Answer {
    fetch(url, Some(body), headers).await
}

/// GETs `url` (e.g. `/_sse/presence?topic=room:lobby`).
///
/// ```
/// # futures_lite_block_on(async {
/// let answer = herald_client::http::get("/_sse/presence?topic=room:lobby").await;
/// assert_eq!(answer.status, 0); // not in a browser: nothing was sent
/// # });
/// # fn futures_lite_block_on(f: impl std::future::Future<Output = ()>) {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     assert!(f.as_mut().poll(&mut cx).is_ready());
/// # }
/// ```
pub async fn get(url: &str) -> Answer {
    fetch(url, None, &[]).await
}

/// Who is connected to `topic`, on every node of the server this page
/// came from (`GET /_sse/presence?topic=`); the server's answer when it
/// refuses (401/403: the caller may not subscribe to the topic).
///
/// ```
/// # futures_lite_block_on(async {
/// let refused = herald_client::http::presence("room:lobby").await.unwrap_err();
/// assert_eq!(refused.status, 0); // not in a browser: nothing was sent
/// # });
/// # fn futures_lite_block_on(f: impl std::future::Future<Output = ()>) {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     assert!(f.as_mut().poll(&mut cx).is_ready());
/// # }
/// ```
pub async fn presence(topic: &str) -> Result<TopicPresence, Answer> {
    presence_with(topic, &[]).await
}

/// [`presence`] asked with request headers (a token: the server shows a
/// caller its own connections, and members' user ids where the topic's
/// rule lets that caller see them).
pub async fn presence_with(topic: &str, headers: &[(&str, &str)]) -> Result<TopicPresence, Answer> {
    let url = format!("/_sse/presence?topic={}", encode_component(topic));
    let answer = fetch(&url, None, headers).await;
    if !answer.ok() {
        return Err(answer);
    }
    serde_json::from_str(&answer.body).map_err(|e| Answer {
        status: answer.status,
        body: serde_json::json!({ "error": format!("not a presence answer: {e}") }).to_string(),
    })
}

/// A GET, or a JSON POST of `body`, with `headers`.
async fn fetch(url: &str, body: Option<String>, headers: &[(&str, &str)]) -> Answer {
    #[cfg(target_arch = "wasm32")]
    {
        browser_fetch(url, body, headers).await
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (url, body, headers);
        Answer::failed("not in a browser")
    }
}

#[cfg(target_arch = "wasm32")]
async fn browser_fetch(url: &str, body: Option<String>, extra: &[(&str, &str)]) -> Answer {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    let Some(window) = web_sys::window() else {
        return Answer::failed("no window");
    };
    let init = web_sys::RequestInit::new();
    if let Ok(headers) = web_sys::Headers::new() {
        if let Some(body) = body {
            init.set_method("POST");
            init.set_body(&body.into());
            let _ = headers.set("Content-Type", "application/json");
        }
        for (name, value) in extra {
            let _ = headers.set(name, value);
        }
        init.set_headers(&headers);
    }
    let Ok(resp) = JsFuture::from(window.fetch_with_str_and_init(url, &init)).await else {
        return Answer::failed("the server could not be reached");
    };
    let Ok(resp) = resp.dyn_into::<web_sys::Response>() else {
        return Answer::failed("not a response");
    };
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Answer {
        status: resp.status(),
        body: text,
    }
}
