//! The upstream faults the campaign injects through the simulators' fault APIs, drawn from a
//! weighted, seeded mix at a steady pace while jobs move.

use std::collections::BTreeMap;
use std::fmt;

use rand::Rng;
use rand::rngs::StdRng;

/// One kind of fault, named as the report prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    TikTok5xx,
    TikTokTimeoutAfterAccept,
    TikTokDropAfterAccept,
    TikTok429Storm,
    TikTokSpamRisk,
    TikTokCapError,
    TikTokStuckProcessing,
    TokenRevocation,
    TikTokWebhookDrop,
    TikTokWebhookDuplicate,
    TikTokWebhookDelay,
    TikTokWebhookReorder,
    Ssemble5xx,
    SsembleTimeoutAfterAccept,
    SsembleDropAfterAccept,
    Ssemble429Storm,
    SsembleStuckProcessing,
    SsembleWebhookDrop,
    SsembleWebhookDuplicate,
    SsembleWebhookDelay,
    SsembleWebhookReorder,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::TikTok5xx => "tiktok 5xx",
            Self::TikTokTimeoutAfterAccept => "tiktok timeout after accept",
            Self::TikTokDropAfterAccept => "tiktok connection cut after accept",
            Self::TikTok429Storm => "tiktok 429 storm",
            Self::TikTokSpamRisk => "tiktok spam_risk_* error",
            Self::TikTokCapError => "tiktok cap error",
            Self::TikTokStuckProcessing => "tiktok stuck processing",
            Self::TokenRevocation => "tiktok token revocation",
            Self::TikTokWebhookDrop => "tiktok webhook dropped",
            Self::TikTokWebhookDuplicate => "tiktok webhook duplicated",
            Self::TikTokWebhookDelay => "tiktok webhook delayed",
            Self::TikTokWebhookReorder => "tiktok webhook reordered",
            Self::Ssemble5xx => "ssemble 5xx",
            Self::SsembleTimeoutAfterAccept => "ssemble timeout after accept",
            Self::SsembleDropAfterAccept => "ssemble connection cut after accept",
            Self::Ssemble429Storm => "ssemble 429 storm",
            Self::SsembleStuckProcessing => "ssemble stuck processing",
            Self::SsembleWebhookDrop => "ssemble webhook dropped",
            Self::SsembleWebhookDuplicate => "ssemble webhook duplicated",
            Self::SsembleWebhookDelay => "ssemble webhook delayed",
            Self::SsembleWebhookReorder => "ssemble webhooks held and released reversed",
        };
        f.write_str(s)
    }
}

impl Fault {
    pub const ALL: [Fault; 21] = [
        Self::TikTok5xx,
        Self::TikTokTimeoutAfterAccept,
        Self::TikTokDropAfterAccept,
        Self::TikTok429Storm,
        Self::TikTokSpamRisk,
        Self::TikTokCapError,
        Self::TikTokStuckProcessing,
        Self::TokenRevocation,
        Self::TikTokWebhookDrop,
        Self::TikTokWebhookDuplicate,
        Self::TikTokWebhookDelay,
        Self::TikTokWebhookReorder,
        Self::Ssemble5xx,
        Self::SsembleTimeoutAfterAccept,
        Self::SsembleDropAfterAccept,
        Self::Ssemble429Storm,
        Self::SsembleStuckProcessing,
        Self::SsembleWebhookDrop,
        Self::SsembleWebhookDuplicate,
        Self::SsembleWebhookDelay,
        Self::SsembleWebhookReorder,
    ];

    /// Default weights: frequent transient faults, rarer ones that park jobs for a person.
    fn default_weight(self) -> u32 {
        match self {
            Self::TikTok5xx | Self::Ssemble5xx => 6,
            Self::TikTokDropAfterAccept | Self::SsembleDropAfterAccept => 4,
            // Each holds a function for the client's whole timeout (30 s real).
            Self::TikTokTimeoutAfterAccept | Self::SsembleTimeoutAfterAccept => 1,
            Self::TikTok429Storm | Self::Ssemble429Storm => 3,
            // Each blocks an account for a (simulated) day.
            Self::TikTokSpamRisk | Self::TikTokCapError => 1,
            Self::TikTokStuckProcessing | Self::SsembleStuckProcessing => 1,
            Self::TokenRevocation => 1,
            _ => 3,
        }
    }
}

/// Which faults to draw and how often each.
#[derive(Debug, Clone)]
pub struct FaultMix {
    pub weights: BTreeMap<Fault, u32>,
    /// Accounts whose authorisation is revoked at most (each parks all that account's jobs).
    pub max_revocations: u32,
}

impl Default for FaultMix {
    fn default() -> Self {
        Self {
            weights: Fault::ALL
                .iter()
                .map(|f| (*f, f.default_weight()))
                .collect(),
            max_revocations: 2,
        }
    }
}

impl FaultMix {
    /// No faults at all (kills and the restart may still run).
    pub fn none() -> Self {
        Self {
            weights: BTreeMap::new(),
            max_revocations: 0,
        }
    }

    pub fn pick(&self, rng: &mut StdRng) -> Option<Fault> {
        let total: u32 = self.weights.values().sum();
        if total == 0 {
            return None;
        }
        let mut roll = rng.random_range(0..total);
        for (fault, w) in &self.weights {
            if roll < *w {
                return Some(*fault);
            }
            roll -= w;
        }
        None
    }
}
