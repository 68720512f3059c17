//! (being built: OpenBao dev server management)
