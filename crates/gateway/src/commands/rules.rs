//! The command policy in force: the rules of `[gateway.commands]` (fixed for the node's
//! life, evaluated first) followed by the rules set through the admin API, kept in one store
//! setting so every node evaluates the same list. A node reloads the admin rules when the
//! change feed announces the setting; on SQLite there is one node, which reloads itself.
//!
//! Rule names are unique across both lists: a denial or an audit record names one rule.

use std::sync::{Arc, PoisonError, RwLock};

use portcullis_core::command_policy::{CommandPolicy, CommandRule};
use portcullis_store::Store;

use super::CommandError;
use portcullis_store::swap_setting;

/// The store setting holding the admin API's rules (JSON, a list of rules).
pub const RULES_SETTING: &str = "gateway.command_rules";

pub(super) struct Rules {
    store: Arc<dyn Store>,
    config: Vec<CommandRule>,
    /// The admin rules and the combined policy, swapped together.
    current: RwLock<(Vec<CommandRule>, Arc<CommandPolicy>)>,
}

impl Rules {
    pub(super) fn new(store: Arc<dyn Store>, config: CommandPolicy) -> Self {
        let config: Vec<CommandRule> = config.into();
        let policy = Arc::new(CommandPolicy::new(config.clone()).unwrap_or_default());
        Self {
            store,
            config,
            current: RwLock::new((Vec::new(), policy)),
        }
    }

    /// The policy to evaluate now.
    pub(super) fn policy(&self) -> Arc<CommandPolicy> {
        Arc::clone(&self.read().1)
    }

    /// (configuration rules, admin rules).
    pub(super) fn both(&self) -> (Vec<CommandRule>, Vec<CommandRule>) {
        (self.config.clone(), self.read().0.clone())
    }

    /// Validates the admin rules with the configuration's, stores them (compare-and-swap
    /// against what this node last read, so two concurrent edits cannot both win silently),
    /// and puts them in force here.
    pub(super) async fn set(
        &self,
        admin: Vec<CommandRule>,
    ) -> Result<Vec<CommandRule>, CommandError> {
        let policy = self.combine(admin.clone())?;
        let bytes = serde_json::to_vec(&admin)
            .map_err(|e| CommandError::Unavailable(format!("encoding the rules: {e}")))?;
        let before = self.store.get_setting(RULES_SETTING).await?;
        let written = swap_setting(
            self.store.as_ref(),
            RULES_SETTING,
            before.as_deref(),
            &bytes,
        )
        .await?;
        if !written {
            return Err(CommandError::Conflict(
                "the rules changed meanwhile; read them again and retry".into(),
            ));
        }
        *self.write() = (admin.clone(), Arc::new(policy));
        Ok(admin)
    }

    /// Reads the admin rules from the store and puts them in force. Rules that no longer
    /// validate with this node's configuration (a name now taken by a configuration rule)
    /// are refused: the node keeps what it had and says so.
    pub(super) async fn reload(&self) -> Result<(), CommandError> {
        let admin: Vec<CommandRule> = match self.store.get_setting(RULES_SETTING).await? {
            None => Vec::new(),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                CommandError::Invalid(format!("the stored command rules do not parse: {e}"))
            })?,
        };
        let policy = self.combine(admin.clone())?;
        *self.write() = (admin, Arc::new(policy));
        Ok(())
    }

    fn combine(&self, admin: Vec<CommandRule>) -> Result<CommandPolicy, CommandError> {
        let mut all = self.config.clone();
        all.extend(admin);
        Ok(CommandPolicy::new(all)?)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (Vec<CommandRule>, Arc<CommandPolicy>)> {
        // Replaced whole under the lock: a panic cannot leave it half-written.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, (Vec<CommandRule>, Arc<CommandPolicy>)> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }
}
