//! The demo's calls to the server's JSON routes (browser only).

/// The server's answer: status and body text.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error` of a JSON error body, or the body itself.
    pub fn error_message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.clone())
    }
}

/// POSTs `body` as JSON, exactly as given: a body that is not valid JSON
/// reaches the server and comes back as its error, which the page shows.
#[cfg(feature = "hydrate")]
pub async fn post_json(url: &str, body: String) -> Answer {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    let fail = |e: String| Answer {
        status: 0,
        body: format!("{{\"error\":{}}}", serde_json::Value::String(e)),
    };
    let Some(window) = web_sys::window() else {
        return fail("no window".into());
    };
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    if let Ok(headers) = web_sys::Headers::new() {
        let _ = headers.set("Content-Type", "application/json");
        init.set_headers(&headers);
    }
    let resp = match JsFuture::from(window.fetch_with_str_and_init(url, &init)).await {
        Ok(r) => r,
        Err(_) => return fail("the server could not be reached".into()),
    };
    let Ok(resp) = resp.dyn_into::<web_sys::Response>() else {
        return fail("not a response".into());
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

#[cfg(not(feature = "hydrate"))]
pub async fn post_json(_url: &str, _body: String) -> Answer {
    Answer {
        status: 0,
        body: String::new(),
    }
}

/// Milliseconds since the epoch, for event times.
pub fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

/// `HH:MM:SS.mmm` (UTC) for a timestamp in ms.
pub fn clock(ms: f64) -> String {
    let total = ms.max(0.0) as u64;
    let (h, m, s, milli) = (
        total / 3_600_000 % 24,
        total / 60_000 % 60,
        total / 1000 % 60,
        total % 1000,
    );
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}
