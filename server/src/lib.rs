//! imbench server.
