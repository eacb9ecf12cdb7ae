//! `SSEManager`: named clients with a default config (GoSPA's
//! `getSSEManager()`), and one shared EventSource per URL.
//!
//! Browsers allow six HTTP/1.1 connections per origin; a page whose
//! components each open their own EventSource runs out fast. [`SSEManager::share`]
//! hands every component a [`SharedStream`] lease on **one** connection per
//! URL, reference-counted and closed when the last lease is dropped. Topics
//! a lease asks for are held by that one client
//! ([`SSEClient::subscribe`]: on the open stream, and on every later
//! connection, resumed from history) until no lease wants them any more.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::client::SSEClient;
use crate::config::SseConfig;

thread_local! {
    static MANAGER: SSEManager = SSEManager::default();
}

/// The page's manager (one per browser thread).
///
/// ```
/// use herald_client::{get_sse_manager, SseConfig};
///
/// let manager = get_sse_manager();
/// manager.set_default_config(SseConfig::new("").max_retries(10));
/// let main = manager.client_url("main", "/_sse/main");
/// assert_eq!(main.config().max_retries, 10);
/// assert!(manager.get("main").is_some());
/// manager.disconnect_all();
/// ```
pub fn get_sse_manager() -> SSEManager {
    MANAGER.with(SSEManager::clone)
}

/// Connects the page manager's client `name` (GoSPA's `connectSSE`):
/// created from `config` over the manager's defaults if new, then
/// connected.
///
/// ```
/// use herald_client::{connect_sse, get_sse_manager, SseConfig, SseState};
///
/// let sse = connect_sse("notifications", SseConfig::new("/_sse/connect").debug(true));
/// assert_eq!(sse.state(), SseState::Connecting);
/// assert!(get_sse_manager().has("notifications"));
/// get_sse_manager().remove("notifications");
/// ```
pub fn connect_sse(name: &str, config: SseConfig) -> SSEClient {
    get_sse_manager().connect(name, config)
}

/// See the module docs. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct SSEManager {
    inner: Rc<RefCell<ManagerInner>>,
}

#[derive(Default)]
struct ManagerInner {
    defaults: Option<SseConfig>,
    named: HashMap<String, SSEClient>,
    shared: HashMap<String, Shared>,
}

struct Shared {
    client: SSEClient,
    leases: usize,
    /// Topic → how many leases want it.
    topics: BTreeMap<String, usize>,
}

impl SSEManager {
    /// The settings every client the manager makes starts from: each
    /// setting a client's own config does not set comes from here (see
    /// [`SseConfig::over`]); the URL is always the client's. Called again,
    /// it merges: what this call sets wins, the rest of the earlier
    /// defaults stays.
    ///
    /// ```
    /// use herald_client::{SSEManager, SseConfig};
    /// let manager = SSEManager::default();
    /// manager.set_default_config(SseConfig::new("").max_retries(10).bearer("t"));
    /// manager.set_default_config(SseConfig::new("").debug(true));
    /// let c = manager.client("c", SseConfig::new("/_sse/connect")).config();
    /// assert_eq!((c.max_retries, c.debug, c.headers.len()), (10, true, 1));
    /// ```
    pub fn set_default_config(&self, config: SseConfig) {
        let mut inner = self.inner.borrow_mut();
        let merged = match &inner.defaults {
            Some(earlier) => config.over(earlier),
            None => config,
        };
        inner.defaults = Some(merged);
    }

    /// `config` over the manager's defaults.
    fn with_defaults(&self, config: SseConfig) -> SseConfig {
        match &self.inner.borrow().defaults {
            Some(defaults) => config.over(defaults),
            None => config,
        }
    }

    fn defaults_for(&self, url: &str) -> SseConfig {
        self.with_defaults(SseConfig::new(url))
    }

    /// The client named `name`, created from `config` over the manager's
    /// defaults if it does not exist (GoSPA's `client(name, config)`).
    ///
    /// ```
    /// use herald_client::{SSEManager, SseConfig};
    /// let manager = SSEManager::default();
    /// manager.set_default_config(SseConfig::new("").max_retries(9).debug(true));
    /// let logs = manager.client("logs", SseConfig::new("/_sse/logs").max_retries(2));
    /// assert_eq!((logs.config().max_retries, logs.config().debug), (2, true));
    /// assert_eq!(manager.client_names(), ["logs"]);
    /// ```
    pub fn client(&self, name: &str, config: SseConfig) -> SSEClient {
        if let Some(existing) = self.get(name) {
            return existing;
        }
        let client = SSEClient::new(self.with_defaults(config));
        self.inner
            .borrow_mut()
            .named
            .insert(name.to_owned(), client.clone());
        client
    }

    /// The client `name` (made from `config` if new), connected.
    ///
    /// ```
    /// use herald_client::{SSEManager, SseConfig, SseState};
    /// let manager = SSEManager::default();
    /// let main = manager.connect("main", SseConfig::new("/_sse/connect"));
    /// assert_eq!(main.state(), SseState::Connecting);
    /// assert!(manager.has("main") && !manager.has("logs"));
    /// assert!(manager.disconnect("main"));
    /// assert_eq!(main.state(), SseState::Disconnected);
    /// assert!(manager.remove("main"));
    /// assert!(manager.client_names().is_empty());
    /// ```
    pub fn connect(&self, name: &str, config: SseConfig) -> SSEClient {
        let client = self.client(name, config);
        client.connect();
        client
    }

    /// Disconnects client `name` (it stays known; `remove` forgets it).
    /// Returns whether there was one.
    pub fn disconnect(&self, name: &str) -> bool {
        let client = self.get(name);
        client.map(|c| c.disconnect()).is_some()
    }

    /// Whether a client is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.inner.borrow().named.contains_key(name)
    }

    /// The names of the manager's clients, sorted.
    pub fn client_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.borrow().named.keys().cloned().collect();
        names.sort();
        names
    }

    /// The client named `name`, created from the default config and `url`.
    pub fn client_url(&self, name: &str, url: &str) -> SSEClient {
        let config = self.defaults_for(url);
        self.client(name, config)
    }

    /// The client named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<SSEClient> {
        self.inner.borrow().named.get(name).cloned()
    }

    /// Disconnects and forgets a named client.
    pub fn remove(&self, name: &str) -> bool {
        let client = self.inner.borrow_mut().named.remove(name);
        client.map(|c| c.disconnect()).is_some()
    }

    /// Disconnects every client, named and shared.
    pub fn disconnect_all(&self) {
        let clients: Vec<SSEClient> = {
            let inner = self.inner.borrow();
            inner
                .named
                .values()
                .chain(inner.shared.values().map(|s| &s.client))
                .cloned()
                .collect()
        };
        for c in clients {
            c.disconnect();
        }
    }

    /// A lease on the one shared connection to `url`; connects on the first lease.
    ///
    /// ```
    /// use herald_client::get_sse_manager;
    ///
    /// let manager = get_sse_manager();
    /// let mut chat = manager.share("/_sse/connect");
    /// let mut jobs = manager.share("/_sse/connect"); // the same EventSource
    /// assert_eq!(manager.shared_leases("/_sse/connect"), 2);
    /// chat.subscribe(&["room:general"]);
    /// jobs.subscribe(&["job:42"]);
    /// chat.client().on_named("message", |m| println!("{}", m.data)).forget();
    /// drop(chat);
    /// drop(jobs); // the last lease closes the connection
    /// assert_eq!(manager.shared_leases("/_sse/connect"), 0);
    /// ```
    pub fn share(&self, url: &str) -> SharedStream {
        let client = {
            let mut inner = self.inner.borrow_mut();
            if let Some(shared) = inner.shared.get_mut(url) {
                shared.leases += 1;
                shared.client.clone()
            } else {
                drop(inner);
                let client = SSEClient::new(self.defaults_for(url));
                self.inner.borrow_mut().shared.insert(
                    url.to_owned(),
                    Shared {
                        client: client.clone(),
                        leases: 1,
                        topics: BTreeMap::new(),
                    },
                );
                client.connect();
                client
            }
        };
        SharedStream {
            manager: self.clone(),
            url: url.to_owned(),
            client,
            topics: Vec::new(),
        }
    }

    /// How many leases the shared connection to `url` has (0 = none open).
    pub fn shared_leases(&self, url: &str) -> usize {
        self.inner.borrow().shared.get(url).map_or(0, |s| s.leases)
    }

    /// Counts `topics` in (`delta` 1) or out (-1) for the shared stream
    /// of `url`; the client holds a topic while any lease wants it.
    fn change_topics(&self, url: &str, topics: &[String], delta: isize) {
        let (client, wanted, unwanted) = {
            let mut inner = self.inner.borrow_mut();
            let Some(shared) = inner.shared.get_mut(url) else {
                return;
            };
            let (mut wanted, mut unwanted) = (Vec::new(), Vec::new());
            for t in topics {
                let count = shared.topics.entry(t.clone()).or_insert(0);
                let before = *count;
                *count = count.saturating_add_signed(delta);
                match (before, *count) {
                    (0, n) if n > 0 => wanted.push(t.clone()),
                    (b, 0) if b > 0 => unwanted.push(t.clone()),
                    _ => {}
                }
                if *count == 0 {
                    shared.topics.remove(t);
                }
            }
            (shared.client.clone(), wanted, unwanted)
        };
        client.subscribe(&wanted);
        client.unsubscribe(&unwanted);
    }

    fn release(&self, url: &str) {
        let closing = {
            let mut inner = self.inner.borrow_mut();
            let Some(shared) = inner.shared.get_mut(url) else {
                return;
            };
            shared.leases = shared.leases.saturating_sub(1);
            if shared.leases == 0 {
                inner.shared.remove(url)
            } else {
                None
            }
        };
        if let Some(shared) = closing {
            shared.client.disconnect();
        }
    }
}

/// One component's use of a shared connection. Dropping it gives back its
/// topics and, for the last lease, closes the connection.
pub struct SharedStream {
    manager: SSEManager,
    url: String,
    client: SSEClient,
    topics: Vec<String>,
}

impl SharedStream {
    /// The shared client: register handlers on it (keep their [`Handle`]s
    /// as long as the component lives).
    pub fn client(&self) -> &SSEClient {
        &self.client
    }

    /// Adds topics to the shared stream for as long as this lease holds them.
    pub fn subscribe(&mut self, topics: &[&str]) {
        let new: Vec<String> = topics
            .iter()
            .map(|t| (*t).to_owned())
            .filter(|t| !self.topics.contains(t))
            .collect();
        self.manager.change_topics(&self.url, &new, 1);
        self.topics.extend(new);
    }

    /// Gives topics back; the stream leaves a topic when no lease wants it.
    pub fn unsubscribe(&mut self, topics: &[&str]) {
        let gone: Vec<String> = topics
            .iter()
            .map(|t| (*t).to_owned())
            .filter(|t| self.topics.contains(t))
            .collect();
        self.topics.retain(|t| !gone.contains(t));
        self.manager.change_topics(&self.url, &gone, -1);
    }
}

impl Drop for SharedStream {
    fn drop(&mut self) {
        let topics = std::mem::take(&mut self.topics);
        self.manager.change_topics(&self.url, &topics, -1);
        self.manager.release(&self.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_per_url_closed_with_the_last_lease() {
        let manager = SSEManager::default();
        let mut a = manager.share("/_sse/connect");
        let mut b = manager.share("/_sse/connect");
        assert!(
            Rc::ptr_eq(&a.client().inner_rc(), &b.client().inner_rc()),
            "same client"
        );
        assert_eq!(manager.shared_leases("/_sse/connect"), 2);
        a.subscribe(&["room:1", "news"]);
        b.subscribe(&["news"]);
        assert_eq!(
            a.client().stream_url(),
            "/_sse/connect?topics=news,room%3A1"
        );
        drop(a);
        assert_eq!(
            b.client().stream_url(),
            "/_sse/connect?topics=news",
            "news is still wanted by b"
        );
        b.unsubscribe(&["news"]);
        assert_eq!(b.client().stream_url(), "/_sse/connect");
        let client = b.client().clone();
        drop(b);
        assert_eq!(manager.shared_leases("/_sse/connect"), 0);
        assert_eq!(client.state(), crate::SseState::Disconnected);
    }

    #[test]
    fn named_clients_use_the_defaults() {
        let manager = SSEManager::default();
        manager.set_default_config(SseConfig::new("ignored").max_retries(9));
        let logs = manager.client_url("logs", "/_sse/logs");
        assert_eq!(
            (logs.config().url.as_str(), logs.config().max_retries),
            ("/_sse/logs", 9)
        );
        assert!(manager.remove("logs"));
        assert!(manager.get("logs").is_none());
    }
}
