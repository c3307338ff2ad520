//! The rules hold on the real template.yaml, and each one fails on a template mutated to break it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use reelay_template::rules::{
    check_action_services, check_api_cycles, check_fifo_dlqs, check_key_users, check_no_wildcards,
    check_policy_scope, check_policy_scope_with, check_redrive_policies, check_statement_shapes,
    check_visibility_timeouts,
};
use reelay_template::{Template, Violation, check};

const TEMPLATE: &str = include_str!("../../../template.yaml");

/// Applies a textual mutation, failing loudly if the template no longer contains `from`
/// (so a template edit cannot silently turn a mutation test into a no-op).
fn mutated(edits: &[(&str, &str)]) -> Template {
    let mut text = TEMPLATE.to_owned();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "template.yaml no longer contains {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    Template::from_yaml_str(&text).unwrap()
}

#[test]
fn when_checking_the_real_template_should_find_no_violation() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    assert_eq!(check(&t), vec![]);
    assert_eq!(t.functions().len(), 7);
    assert_eq!(t.queues().len(), 6);
}

#[test]
fn when_queue_visibility_is_below_six_function_timeouts_should_report_it() {
    let t = mutated(&[("VisibilityTimeout: 1800", "VisibilityTimeout: 1799")]);
    assert_eq!(
        check_visibility_timeouts(&t),
        vec![Violation::VisibilityTooShort {
            queue: "PublishQueue".into(),
            function: "PublisherFunction".into(),
            visibility_s: 1799,
            timeout_s: 300,
        }]
    );
}

#[test]
fn when_function_timeout_comes_from_globals_should_use_it() {
    // RenderSubmitter loses its own Timeout: Globals' 40 s then needs 240 s > 180 s.
    let t = mutated(&[
        (
            "      Timeout: 30\n      Role: !GetAtt RenderSubmitterRole.Arn",
            "      Role: !GetAtt RenderSubmitterRole.Arn",
        ),
        (
            "    MemorySize: 256\n    Timeout: 10",
            "    MemorySize: 256\n    Timeout: 40",
        ),
    ]);
    assert_eq!(
        check_visibility_timeouts(&t),
        vec![Violation::VisibilityTooShort {
            queue: "RenderQueue".into(),
            function: "RenderSubmitterFunction".into(),
            visibility_s: 180,
            timeout_s: 40,
        }]
    );
}

#[test]
fn when_fifo_queue_has_standard_dlq_should_report_it() {
    let t = mutated(&[(
        "QueueName: !Sub reelay-${Stage}-render-dlq.fifo\n      FifoQueue: true\n      ContentBasedDeduplication: false\n",
        "QueueName: !Sub reelay-${Stage}-render-dlq\n",
    )]);
    assert_eq!(
        check_fifo_dlqs(&t),
        vec![Violation::DlqNotFifo {
            queue: "RenderQueue".into(),
            dlq: "RenderDlq".into(),
        }]
    );
}

#[test]
fn when_queue_has_no_redrive_policy_should_report_it() {
    let t = mutated(&[(
        "      RedrivePolicy:\n        deadLetterTargetArn: !GetAtt PublishDlq.Arn\n        maxReceiveCount: 5\n",
        "",
    )]);
    // PublishDlq is no longer anyone's DLQ, so it too is now a queue without one.
    assert_eq!(
        check_redrive_policies(&t),
        vec![
            Violation::NoRedrive {
                queue: "PublishDlq".into()
            },
            Violation::NoRedrive {
                queue: "PublishQueue".into()
            },
        ]
    );
}

#[test]
fn when_statement_has_wildcard_action_or_resource_should_report_both() {
    let t = mutated(&[
        (
            "Action: sqs:SendMessage\n                Resource: !GetAtt RenderQueue.Arn",
            "Action: sqs:*\n                Resource: !GetAtt RenderQueue.Arn",
        ),
        (
            "Action: secretsmanager:GetSecretValue\n                Resource: !Ref SsembleSecret",
            "Action: secretsmanager:GetSecretValue\n                Resource: '*'",
        ),
    ]);
    let violations = check_no_wildcards(&t);
    assert_eq!(
        violations,
        vec![
            Violation::WildcardAction {
                policy: "IngestApiRole.ingest-api[RenderQueueSend]".into(),
                action: "sqs:*".into(),
            },
            Violation::WildcardResource {
                policy: "SsembleWebhookRole.ssemble-webhook[SsembleKey]".into(),
                resource: "*".into(),
            },
        ]
    );
}

#[test]
fn when_prefix_wildcard_is_not_stage_scoped_should_report_it() {
    let t = mutated(&[(
        "secret:reelay/${Stage}/tiktok-token/*\n                - !Ref AWS::NoValue\n\n  SsembleWebhookRole",
        "secret:reelay/*\n                - !Ref AWS::NoValue\n\n  SsembleWebhookRole",
    )]);
    assert!(check_no_wildcards(&t).iter().any(|v| matches!(
        v,
        Violation::WildcardResource { policy, .. } if policy == "IngestApiRole.ingest-api[LegacyAccountTokens]"
    )));
}

#[test]
fn when_role_names_a_resource_its_function_does_not_use_should_report_it() {
    // The TikTok webhook gets the publish queue, which its environment never names.
    let t = mutated(&[(
        "                Action: secretsmanager:GetSecretValue\n                Resource: !Ref TikTokAppSecret\n\n  RenderSubmitterRole",
        "                Action: secretsmanager:GetSecretValue\n                Resource: !Ref TikTokAppSecret\n              - Effect: Allow\n                Action: sqs:SendMessage\n                Resource: !GetAtt PublishQueue.Arn\n\n  RenderSubmitterRole",
    )]);
    assert_eq!(
        check_policy_scope(&t),
        vec![Violation::ResourceNotUsed {
            function: "TikTokWebhookFunction".into(),
            policy: "TikTokWebhookRole.tiktok-webhook[3]".into(),
            resource: "PublishQueue".into(),
        }]
    );
}

#[test]
fn when_function_lacks_the_token_prefix_its_role_grants_should_report_it() {
    let t = mutated(&[(
        "          TIKTOK_TOKEN_SECRET_PREFIX: !If [HasLegacyTokenSecrets, !Sub 'reelay/${Stage}/tiktok-token/', !Ref AWS::NoValue]\n          TIKTOK_API_BASE_URL: !Ref TikTokApiBaseUrl\n          TIKTOK_PULL_PREFIX",
        "          TIKTOK_API_BASE_URL: !Ref TikTokApiBaseUrl\n          TIKTOK_PULL_PREFIX",
    )]);
    let violations = check_policy_scope(&t);
    assert!(
        violations.iter().any(|v| matches!(
            v,
            Violation::ResourceNotUsed { function, policy, .. }
                if function == "PublisherFunction" && policy == "PublisherRole.publisher[LegacyAccountTokens]"
        )),
        "{violations:?}"
    );
}

#[test]
fn when_index_arn_names_a_missing_index_should_report_it() {
    let t = mutated(&[(
        "- !Sub ${Table.Arn}/index/due",
        "- !Sub ${Table.Arn}/index/overdue",
    )]);
    assert_eq!(
        check_policy_scope(&t),
        vec![Violation::UnknownIndex {
            policy: "ReconcilerRole.reconciler[Table]".into(),
            resource: "${Table.Arn}/index/overdue".into(),
        }]
    );
}

#[test]
fn when_function_uses_sam_generated_role_should_report_it() {
    let t = mutated(&[(
        "      Role: !GetAtt TikTokWebhookRole.Arn\n",
        "      Policies:\n        - DynamoDBCrudPolicy: {TableName: !Ref Table}\n",
    )]);
    assert!(check_policy_scope(&t).contains(&Violation::GeneratedRole {
        function: "TikTokWebhookFunction".into()
    }));
}

#[test]
fn when_api_function_references_its_own_api_should_report_the_cycle() {
    let t = mutated(&[(
        "            - !If [HasDomain, !Sub 'https://${DomainName}', '']\n",
        "            - !If [HasDomain, !Sub 'https://${DomainName}', !Sub 'https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}']\n",
    )]);
    assert_eq!(
        check_api_cycles(&t),
        vec![Violation::ApiCycle {
            function: "IngestApiFunction".into(),
            api: "HttpApi".into(),
        }]
    );
}

#[test]
fn when_function_uses_a_resource_its_role_does_not_grant_should_report_it() {
    // The first PublishQueueSend statement is the Ssemble webhook's.
    let t = mutated(&[(
        "              - Sid: PublishQueueSend\n                Effect: Allow\n                Action: sqs:SendMessage\n                Resource: !GetAtt PublishQueue.Arn\n",
        "",
    )]);
    assert_eq!(
        check_policy_scope(&t),
        vec![Violation::MissingGrant {
            function: "SsembleWebhookFunction".into(),
            resource: "PublishQueue".into(),
        }]
    );
}

#[test]
fn when_statement_uses_not_resource_or_not_action_should_report_it() {
    // NotResource is a wildcard in disguise: everything but the queue.
    let t = mutated(&[
        (
            "Action: sqs:SendMessage\n                Resource: !GetAtt RenderQueue.Arn",
            "Action: sqs:SendMessage\n                NotResource: !GetAtt RenderQueue.Arn",
        ),
        (
            "Action: secretsmanager:GetSecretValue\n                Resource: !Ref SsembleSecret",
            "NotAction: secretsmanager:DeleteSecret\n                Resource: !Ref SsembleSecret",
        ),
    ]);
    assert_eq!(
        check_statement_shapes(&t),
        vec![
            Violation::InexactStatement {
                policy: "IngestApiRole.ingest-api[RenderQueueSend]".into(),
                reason: "uses NotResource",
            },
            Violation::InexactStatement {
                policy: "IngestApiRole.ingest-api[RenderQueueSend]".into(),
                reason: "has no Resource",
            },
            Violation::InexactStatement {
                policy: "SsembleWebhookRole.ssemble-webhook[SsembleKey]".into(),
                reason: "uses NotAction",
            },
            Violation::InexactStatement {
                policy: "SsembleWebhookRole.ssemble-webhook[SsembleKey]".into(),
                reason: "has no Action",
            },
        ]
    );
    // The whole check sees it too (not only the rule on its own).
    assert!(!check(&t).is_empty());
}

#[test]
fn when_role_attaches_a_managed_policy_should_report_it() {
    let t = mutated(&[(
        "  IngestApiRole:\n    Type: AWS::IAM::Role\n    Properties:\n",
        "  IngestApiRole:\n    Type: AWS::IAM::Role\n    Properties:\n      ManagedPolicyArns: [arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]\n",
    )]);
    assert_eq!(
        check_statement_shapes(&t),
        vec![Violation::ManagedPolicy {
            owner: "IngestApiRole".into(),
            policy: "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".into(),
        }]
    );
}

#[test]
fn when_action_targets_another_services_resource_should_report_it() {
    let t = mutated(&[(
        "Action: sqs:SendMessage\n                Resource: !GetAtt RenderQueue.Arn",
        "Action: sqs:SendMessage\n                Resource: !GetAtt Table.Arn",
    )]);
    let v = check_action_services(&t);
    assert_eq!(
        v,
        vec![Violation::ServiceMismatch {
            policy: "IngestApiRole.ingest-api[RenderQueueSend]".into(),
            action: "sqs:SendMessage".into(),
            resource: "!GetAtt Table.Arn".into(),
        }]
    );
    // Literal ARNs are checked by their service field.
    let t = mutated(&[(
        "                  Action: secretsmanager:GetSecretValue\n                  Resource: !Sub arn:${AWS::Partition}:secretsmanager",
        "                  Action: dynamodb:Scan\n                  Resource: !Sub arn:${AWS::Partition}:secretsmanager",
    )]);
    let v = check_action_services(&t);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        matches!(&v[0], Violation::ServiceMismatch { action, .. } if action == "dynamodb:Scan")
    );
}

/// Each function is granted exactly the queues, table and secrets its environment and event
/// sources name, read from the real template (so a new grant or a new use must agree).
#[test]
fn each_function_is_granted_exactly_the_resources_it_uses() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    let stmts = reelay_template::rules::statements(&t);
    for f in t.functions() {
        let role = f
            .role_id()
            .unwrap_or_else(|| panic!("{} has no explicit role", f.id));
        let granted: std::collections::BTreeSet<String> = stmts[role]
            .iter()
            .flat_map(|s| s.resources.iter().flat_map(|r| r.references()))
            .filter(|r| t.is_resource(r))
            .collect();
        let mut used: std::collections::BTreeSet<String> = f
            .environment
            .values()
            .flat_map(|v| v.references())
            .filter(|r| t.is_resource(r))
            .collect();
        used.extend(f.sqs_sources());
        // Each function also writes its own log group.
        let granted_non_log: std::collections::BTreeSet<_> = granted
            .iter()
            .filter(|r| !r.ends_with("LogGroup"))
            .cloned()
            .collect();
        let used_grantable: std::collections::BTreeSet<_> = used
            .iter()
            .filter(|r| {
                t.resources.get(*r).is_some_and(|x| {
                    [
                        "AWS::SQS::Queue",
                        "AWS::DynamoDB::Table",
                        "AWS::SecretsManager::Secret",
                    ]
                    .contains(&x.kind.as_str())
                })
            })
            .cloned()
            .collect();
        assert_eq!(granted_non_log, used_grantable, "{}", f.id);
        assert!(!granted_non_log.is_empty(), "{} is granted nothing", f.id);
    }
}

/// The roles whose inline statements grant `action` on a resource matching `on` (a logical id or
/// a literal ARN fragment).
fn roles_granting(t: &Template, action: &str, on: &str) -> std::collections::BTreeSet<String> {
    reelay_template::rules::statements(t)
        .into_iter()
        .filter(|(_, stmts)| {
            stmts.iter().any(|s| {
                s.actions.iter().any(|a| a.as_str() == Some(action))
                    && s.resources
                        .iter()
                        .any(|r| r.references().contains(on) || format!("{r:?}").contains(on))
            })
        })
        .map(|(role, _)| role)
        .collect()
}

/// Issue 13: the tokens' key and table are for the roles that handled token secrets, and only
/// those; the per-account secrets are only read any more (migration), never created or written.
#[test]
fn only_the_token_roles_may_use_the_token_key_and_table() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    assert_eq!(check_key_users(&t), vec![]);
    let token_roles: std::collections::BTreeSet<String> =
        ["IngestApiRole", "PublisherRole", "ReconcilerRole"]
            .map(String::from)
            .into();
    assert_eq!(
        roles_granting(&t, "secretsmanager:GetSecretValue", "tiktok-token/*"),
        token_roles
    );
    assert_eq!(
        roles_granting(&t, "dynamodb:GetItem", "TokenTable"),
        token_roles
    );
    assert_eq!(
        roles_granting(&t, "dynamodb:PutItem", "TokenTable"),
        token_roles
    );
    for write in [
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
    ] {
        assert!(
            roles_granting(&t, write, "tiktok-token/*").is_empty(),
            "{write}"
        );
    }
    // The key policy's users are exactly those roles, for data keys of this purpose only.
    let key = &t.resources["TokenKey"];
    let stmts = key
        .prop("KeyPolicy")
        .unwrap()
        .get("Statement")
        .unwrap()
        .as_list();
    let users = stmts
        .iter()
        .find(|s| s.get("Sid").and_then(|x| x.as_str()) == Some("TokenRoles"))
        .unwrap();
    let principals: std::collections::BTreeSet<String> = users
        .get("Principal")
        .unwrap()
        .references()
        .into_iter()
        .collect();
    assert_eq!(principals, token_roles);
    let actions: Vec<_> = users
        .get("Action")
        .unwrap()
        .as_list()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(actions, ["kms:GenerateDataKey", "kms:Decrypt"]);
    assert!(format!("{:?}", users.get("Condition")).contains("kms:EncryptionContext:purpose"));
    assert_eq!(
        key.prop("EnableKeyRotation").and_then(|v| v.as_bool()),
        Some(true)
    );
    // The table: on demand, point-in-time recovery, encrypted at rest, kept on stack deletion.
    let table = &t.resources["TokenTable"];
    assert_eq!(
        table.prop("BillingMode").and_then(|v| v.as_str()),
        Some("PAY_PER_REQUEST")
    );
    assert_eq!(
        table
            .prop("PointInTimeRecoverySpecification")
            .and_then(|p| p.get("PointInTimeRecoveryEnabled"))
            .and_then(|v| v.as_bool()),
        Some(true)
    );
    assert_eq!(
        table
            .prop("SSESpecification")
            .and_then(|p| p.get("SSEEnabled"))
            .and_then(|v| v.as_bool()),
        Some(true)
    );
    assert!(
        TEMPLATE
            .contains("  TokenTable:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain")
    );
}

#[test]
fn when_the_key_policy_lets_another_role_or_the_account_use_the_key_should_report_it() {
    let t = mutated(&[(
        "                - !GetAtt ReconcilerRole.Arn\n            Action: [kms:GenerateDataKey, kms:Decrypt]",
        "                - !GetAtt ReconcilerRole.Arn\n                - !GetAtt TikTokWebhookRole.Arn\n            Action: [kms:GenerateDataKey, kms:Decrypt]",
    )]);
    assert_eq!(
        check_key_users(&t),
        vec![Violation::KeyUseNotNeeded {
            key: "TokenKey".into(),
            statement: "TokenRoles".into(),
            principal: "TikTokWebhookRole".into(),
        }]
    );
    // The account root with Decrypt would let any IAM policy in the account grant it.
    let t = mutated(&[(
        "              - kms:DescribeKey\n",
        "              - kms:DescribeKey\n              - kms:Decrypt\n",
    )]);
    let v = check_key_users(&t);
    assert!(
        matches!(&v[..], [Violation::KeyUseNotNeeded { statement, principal, .. }]
            if statement == "Administer" && principal.ends_with(":root")),
        "{v:?}"
    );
    let t = mutated(&[(
        "              - kms:DescribeKey\n",
        "              - kms:*\n",
    )]);
    assert!(matches!(
        &check_key_users(&t)[..],
        [Violation::KeyPolicyInexact { statement, .. }] if statement == "Administer"
    ));
}

#[test]
fn when_a_token_function_may_not_use_the_key_should_report_it() {
    let t = mutated(&[(
        "                - !GetAtt ReconcilerRole.Arn\n            Action: [kms:GenerateDataKey, kms:Decrypt]",
        "            Action: [kms:GenerateDataKey, kms:Decrypt]",
    )]);
    assert_eq!(
        check_key_users(&t),
        vec![Violation::KeyUseMissing {
            function: "ReconcilerFunction".into(),
            key: "TokenKey".into(),
        }]
    );
}

/// Issue 13: the operator's role (`OperatorRoleArn`, empty by default) may use the token key
/// only when given, with exactly the functions' actions and encryption-context condition.
#[test]
fn the_operator_role_may_use_the_token_key_only_when_the_parameter_is_set() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    assert_eq!(check_key_users(&t), vec![]);
    assert_eq!(t.parameters["OperatorRoleArn"].default.as_deref(), Some(""));
    let none = reelay_template::resolve::Resolver::new(&t, &Default::default());
    assert!(!none.condition("HasOperatorRole").unwrap());
    let given = std::collections::BTreeMap::from([(
        "OperatorRoleArn".to_owned(),
        "arn:aws:iam::123456789012:role/reelay-operator".to_owned(),
    )]);
    let some = reelay_template::resolve::Resolver::new(&t, &given);
    assert!(some.condition("HasOperatorRole").unwrap());
}

#[test]
fn when_the_operator_statement_is_not_exactly_the_parameters_should_report_it() {
    let operator = |v: &[Violation]| -> Vec<String> {
        v.iter()
            .map(|v| match v {
                Violation::OperatorKeyUse {
                    key,
                    statement,
                    parameter,
                    reason,
                } => {
                    assert_eq!(
                        (key.as_str(), statement.as_str(), parameter.as_str()),
                        ("TokenKey", "OperatorRole", "OperatorRoleArn")
                    );
                    reason.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect()
    };
    // Present whatever the parameter says (guarded by another parameter's condition).
    let t = mutated(&[(
        "          - !If\n            - HasOperatorRole",
        "          - !If\n            - HasAlarmTopic",
    )]);
    assert_eq!(
        operator(&check_key_users(&t)),
        ["the statement is not absent when the parameter is empty"]
    );
    // Unconditional: with the parameter empty the key policy would name an empty principal.
    let conditional = "          - !If\n            - HasOperatorRole\n            - Sid: OperatorRole\n              Effect: Allow\n              Principal: {AWS: !Ref OperatorRoleArn}\n              Action: [kms:GenerateDataKey, kms:Decrypt]\n              Resource: '*'\n              Condition:\n                StringEquals:\n                  kms:EncryptionContext:purpose: reelay-tiktok-token\n            - !Ref AWS::NoValue\n";
    let unconditional = "          - Sid: OperatorRole\n            Effect: Allow\n            Principal: {AWS: !Ref OperatorRoleArn}\n            Action: [kms:GenerateDataKey, kms:Decrypt]\n            Resource: '*'\n            Condition:\n              StringEquals:\n                kms:EncryptionContext:purpose: reelay-tiktok-token\n";
    let t = mutated(&[(conditional, unconditional)]);
    assert_eq!(
        operator(&check_key_users(&t)),
        ["the statement is not absent when the parameter is empty"]
    );
    // An !If whose other branch is a statement: not a shape this check judges.
    let t = mutated(&[(
        "reelay-tiktok-token\n            - !Ref AWS::NoValue\n",
        "reelay-tiktok-token\n            - {Sid: Other, Effect: Allow, Principal: {AWS: !Ref OperatorRoleArn}, Action: kms:DescribeKey, Resource: '*'}\n",
    )]);
    assert!(
        matches!(&check_key_users(&t)[..], [Violation::KeyPolicyInexact { reason, .. }]
            if reason.contains("AWS::NoValue")),
        "{:?}",
        check_key_users(&t)
    );
    // More than the data-key actions `tokens migrate` needs.
    let t = mutated(&[(
        "              Action: [kms:GenerateDataKey, kms:Decrypt]",
        "              Action: [kms:GenerateDataKey, kms:Decrypt, kms:ReEncryptFrom]",
    )]);
    assert_eq!(
        operator(&check_key_users(&t)),
        ["its actions are not exactly kms:GenerateDataKey, kms:Decrypt"]
    );
    // Another purpose, or none: not the function roles' encryption-context condition.
    let t = mutated(&[(
        "                  kms:EncryptionContext:purpose: reelay-tiktok-token\n            - !Ref AWS::NoValue",
        "                  kms:EncryptionContext:purpose: anything\n            - !Ref AWS::NoValue",
    )]);
    assert_eq!(
        operator(&check_key_users(&t)),
        ["its condition is not the function roles' (the encryption context)"]
    );
    let t = mutated(&[(
        "              Resource: '*'\n              Condition:\n                StringEquals:\n                  kms:EncryptionContext:purpose: reelay-tiktok-token\n            - !Ref AWS::NoValue",
        "              Resource: '*'\n            - !Ref AWS::NoValue",
    )]);
    assert_eq!(
        operator(&check_key_users(&t)),
        ["its condition is not the function roles' (the encryption context)"]
    );
    // A default role: the key would have a user nobody chose.
    let t = mutated(&[(
        "  OperatorRoleArn:\n    Type: String\n    Default: ''",
        "  OperatorRoleArn:\n    Type: String\n    Default: arn:aws:iam::123456789012:role/ops",
    )]);
    assert_eq!(operator(&check_key_users(&t)), ["its default is not empty"]);
    // A literal role instead of the parameter is just another user.
    let t = mutated(&[(
        "Principal: {AWS: !Ref OperatorRoleArn}",
        "Principal: {AWS: 'arn:aws:iam::123456789012:role/ops'}",
    )]);
    assert!(
        matches!(&check_key_users(&t)[..], [Violation::KeyUseNotNeeded { statement, principal, .. }]
            if statement == "OperatorRole" && principal.ends_with("role/ops")),
        "{:?}",
        check_key_users(&t)
    );
}

fn legacy_disabled() -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([("LegacyTokenSecrets".to_owned(), "disabled".to_owned())])
}

/// Issue 13: once `tokens migrate` reports 0, `LegacyTokenSecrets=disabled` removes the old
/// secrets' read grant from the three token roles and `TIKTOK_TOKEN_SECRET_PREFIX` from their
/// functions; the scope rule holds both ways.
#[test]
fn legacy_token_secrets_disabled_removes_the_grant_and_the_prefix() {
    let t = Template::from_yaml_str(TEMPLATE).unwrap();
    assert_eq!(
        t.parameters["LegacyTokenSecrets"].default.as_deref(),
        Some("enabled")
    );
    assert_eq!(check_policy_scope_with(&t, &legacy_disabled()), vec![]);
    let enabled = reelay_template::resolve::Resolver::new(&t, &Default::default());
    let disabled = reelay_template::resolve::Resolver::new(&t, &legacy_disabled());
    let mut legacy = 0;
    for stmts in reelay_template::rules::statements(&t).values() {
        for s in stmts
            .iter()
            .filter(|s| s.label.ends_with("[LegacyAccountTokens]"))
        {
            legacy += 1;
            let guard = s.guard.expect("the legacy grant is conditional");
            assert!(enabled.condition(guard).unwrap());
            assert!(!disabled.condition(guard).unwrap());
        }
    }
    assert_eq!(legacy, 3, "one per token role");
    let mut prefixed = Vec::new();
    for f in t.functions() {
        if let Some(v) = f.environment.get("TIKTOK_TOKEN_SECRET_PREFIX") {
            prefixed.push(f.id.to_owned());
            assert!(enabled.resolve(v).unwrap().ends_with("/tiktok-token/"));
            assert_eq!(
                disabled.resolve(v),
                Err(reelay_template::resolve::ResolveError::NoValue),
                "unset"
            );
        }
    }
    assert_eq!(
        prefixed,
        [
            "IngestApiFunction",
            "PublisherFunction",
            "ReconcilerFunction"
        ]
    );
}

#[test]
fn when_the_prefix_outlives_its_grant_or_the_grant_its_prefix_should_report_it() {
    // The ingest function keeps the prefix when disabled, but its role loses the grant.
    let t = mutated(&[(
        "          TIKTOK_TOKEN_SECRET_PREFIX: !If [HasLegacyTokenSecrets, !Sub 'reelay/${Stage}/tiktok-token/', !Ref AWS::NoValue]",
        "          TIKTOK_TOKEN_SECRET_PREFIX: !Sub reelay/${Stage}/tiktok-token/",
    )]);
    assert_eq!(
        check_policy_scope(&t),
        vec![],
        "the defaults alone do not show it"
    );
    let expected = Violation::MissingGrant {
        function: "IngestApiFunction".into(),
        resource: "TIKTOK_TOKEN_SECRET_PREFIX (reelay/dev/tiktok-token/*)".into(),
    };
    assert_eq!(
        check_policy_scope_with(&t, &legacy_disabled()),
        vec![expected.clone()]
    );
    assert_eq!(check(&t), vec![expected], "check tries every allowed value");

    // The ingest role keeps the grant when disabled, but its function loses the prefix.
    let t = mutated(&[
        (
            "  IsProd: !Equals [!Ref Stage, prod]\n",
            "  IsProd: !Equals [!Ref Stage, prod]\n  Always: !Equals [a, a]\n",
        ),
        (
            "                - HasLegacyTokenSecrets\n",
            "                - Always\n",
        ),
    ]);
    assert_eq!(check_policy_scope(&t), vec![]);
    let expected = Violation::ResourceNotUsed {
        function: "IngestApiFunction".into(),
        policy: "IngestApiRole.ingest-api[LegacyAccountTokens]".into(),
        resource: "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:reelay/${Stage}/tiktok-token/*".into(),
    };
    assert_eq!(
        check_policy_scope_with(&t, &legacy_disabled()),
        vec![expected.clone()]
    );
    assert_eq!(check(&t), vec![expected]);
}
