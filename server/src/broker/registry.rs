//! The connected clients of this node, and the connection limits: in all,
//! and per group (a user's connections; an address's anonymous ones).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::{BrokerError, ClientState};
use crate::sync::{read, write};

use crate::sync::lock;

/// Who a connection counts against besides the global limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Group {
    /// `user:<uid>`, or `ip:<address>` for anonymous connections; also the
    /// backplane's key for the cluster-wide count.
    pub key: String,
    /// For the 429's message: "user", "address".
    pub scope: &'static str,
    pub limit: usize,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Registry {
    clients: RwLock<HashMap<Arc<str>, Arc<ClientState>>>,
    /// Open connections per group key. Only changed while `clients` is
    /// write-locked (lock order: clients, then groups).
    groups: Mutex<HashMap<String, usize>>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<Arc<ClientState>> {
        read(&self.clients).get(id).cloned()
    }

    pub fn len(&self) -> usize {
        read(&self.clients).len()
    }

    pub fn all(&self) -> Vec<Arc<ClientState>> {
        read(&self.clients).values().cloned().collect()
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Every update is one increment or decrement.
        lock(&self.groups)
    }

    /// Adds `client` within the limits (`max` in all, its group's own);
    /// returns the connection with the same id it replaces, already
    /// unregistered. The caller has established that `client` may use its
    /// id. Refused: the connection being replaced (if any) stays.
    pub fn register(
        &self,
        client: &Arc<ClientState>,
        max: usize,
    ) -> Result<Option<Arc<ClientState>>, BrokerError> {
        let mut clients = write(&self.clients);
        let mut groups = self.groups();
        let old = clients.remove(&client.id);
        if let Some(old) = &old {
            forget(&mut groups, old);
        }
        let over = if clients.len() >= max {
            Some(("server", max))
        } else {
            client.group.as_ref().and_then(|g| {
                let open = groups.get(&g.key).copied().unwrap_or(0);
                (g.limit > 0 && open >= g.limit).then_some((g.scope, g.limit))
            })
        };
        if let Some((scope, limit)) = over {
            if let Some(old) = old {
                if let Some(g) = &old.group {
                    *groups.entry(g.key.clone()).or_insert(0) += 1;
                }
                clients.insert(old.id.clone(), old);
            }
            return Err(BrokerError::TooManyConnections { scope, limit });
        }
        if let Some(g) = &client.group {
            *groups.entry(g.key.clone()).or_insert(0) += 1;
        }
        clients.insert(client.id.clone(), client.clone());
        Ok(old)
    }

    /// Unregisters `client` if it is still the registered connection of its
    /// id; returns whether it was.
    pub fn remove(&self, client: &Arc<ClientState>) -> bool {
        let mut clients = write(&self.clients);
        let current = clients
            .get(&client.id)
            .is_some_and(|c| Arc::ptr_eq(c, client));
        if current {
            clients.remove(&client.id);
            forget(&mut self.groups(), client);
        }
        current
    }
}

/// Drops one connection from its group's count.
fn forget(groups: &mut HashMap<String, usize>, client: &ClientState) {
    if let Some(g) = &client.group {
        if let Some(n) = groups.get_mut(&g.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                groups.remove(&g.key);
            }
        }
    }
}
