//! One rule for the standard library's locks, used by every module that
//! holds one.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, even if a thread panicked while holding it.
///
/// Herald's critical sections are each one step — a push, a pop, an
/// insert, a counter change, a flag — so a panic elsewhere cannot leave
/// the data half updated, and refusing the lock would only turn one bug
/// into a panic on every later request and stream that touches it.
/// Keep it that way: a critical section of several dependent steps needs
/// its own recovery, not this.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let m = Arc::new(Mutex::new(1));
/// let poisoner = Arc::clone(&m);
/// let _ = std::thread::spawn(move || {
///     let _held = poisoner.lock().unwrap();
///     panic!("while holding the lock");
/// })
/// .join();
/// assert!(m.is_poisoned());
/// assert_eq!(*herald_server::sync::lock(&m), 1);
/// ```
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`]'s rule for a read lock.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`lock`]'s rule for a write lock.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}
