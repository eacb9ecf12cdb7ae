//! Who a send is for: the `target` of `/_sse/publish` and of the
//! notifier's `/api/sse/send`.

use serde::Deserialize;

use crate::broker::names;

/// `{clientId?, userId?, sessionId?}`: who a send is for (here and in the
/// notifier's `/api/sse/send`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    client_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
}

impl Target {
    /// The targeted topics this names (`client:`, `user:`, `session:`).
    pub fn topics(&self) -> Vec<String> {
        [
            self.client_id.as_deref().map(names::client),
            self.user_id.as_deref().map(names::user),
            self.session_id.as_deref().map(names::session),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The topics a send goes to: those named, or `all` when none is.
pub fn destinations(named: Vec<String>) -> Vec<String> {
    if named.is_empty() {
        vec![names::ALL.to_owned()]
    } else {
        named
    }
}
