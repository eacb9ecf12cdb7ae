//! Herald's client runtime (placeholder until the runtime issue lands).
