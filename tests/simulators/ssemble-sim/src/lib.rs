//! A contract-following Ssemble AI Clipping API simulator.
