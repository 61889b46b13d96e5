//! Built-in models; filled in next.
