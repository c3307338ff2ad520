//! Ssemble AI Clipping API client.
