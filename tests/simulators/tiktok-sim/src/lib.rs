//! A contract-following TikTok Content Posting API simulator.
