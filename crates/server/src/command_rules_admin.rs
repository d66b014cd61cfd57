//! The admin API's `/commands/rules` routes over the gateway's command policy: the
//! configuration's rules shown read-only, the admin rules replaced whole (validated with the
//! configuration's, stored by compare-and-swap, audited `command.rules_changed` by the
//! gateway), gateway refusals mapped to the admin API's problems.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_admin::command_rules::{CommandRulesAdmin, CommandRulesView};
use portcullis_admin::AdminError;
use portcullis_core::command_policy::CommandRule;
use portcullis_gateway::commands::CommandError;
use portcullis_gateway::Gateway;
use portcullis_store::StoreError;

/// The command policy as the admin API manages it.
pub struct GatewayCommandRulesAdmin {
    pub gateway: Arc<Gateway>,
}

impl GatewayCommandRulesAdmin {
    fn view(&self) -> CommandRulesView {
        let (config, admin) = self.gateway.commands().rules();
        CommandRulesView { config, admin }
    }
}

/// What the gateway's `Rules::set` says when its compare-and-swap lost to another writer.
fn admin_error(e: CommandError) -> AdminError {
    match e {
        // A rule of syntax, or a name used twice: the core's message, as the caller can fix it.
        CommandError::Invalid(why) => AdminError::BadRequest(why),
        CommandError::Conflict(why) => AdminError::Conflict(why),
        CommandError::Unavailable(why) => AdminError::Store(StoreError::Unavailable(why)),
        other => AdminError::Internal(other.to_string()),
    }
}

#[async_trait]
impl CommandRulesAdmin for GatewayCommandRulesAdmin {
    async fn command_rules(&self) -> Result<CommandRulesView, AdminError> {
        Ok(self.view())
    }

    async fn set_command_rules(
        &self,
        actor: &str,
        rules: Vec<CommandRule>,
    ) -> Result<CommandRulesView, AdminError> {
        self.gateway
            .commands()
            .set_rules(actor, rules)
            .await
            .map_err(admin_error)?;
        Ok(self.view())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_refusals_become_admin_problems() {
        let status = |e: CommandError| admin_error(e).problem().status;
        assert_eq!(
            status(CommandError::Invalid(
                "invalid command rule: the name 'a' is used twice".into()
            )),
            400
        );
        assert_eq!(
            status(CommandError::Conflict(
                "the rules changed meanwhile; read them again and retry".into()
            )),
            409
        );
        assert_eq!(
            status(CommandError::Unavailable("pool timed out".into())),
            503
        );
        let detail = admin_error(CommandError::Unavailable("10.0.0.5 refused".into()))
            .problem()
            .detail;
        assert!(!detail.contains("10.0.0.5"), "{detail}");
    }
}
