//! TikTok Content Posting API and OAuth client, and webhook verification.
