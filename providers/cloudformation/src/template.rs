//! Reads just enough of a rendered CloudFormation template (JSON, or YAML with short-form tags
//! such as `!Ref`) to decide which parameters to pass, and maps nepho's parameters onto the
//! template's by CloudFormation's naming conventions (`db_password` fills `DBPassword`).

use std::collections::BTreeMap;

use nepho_provider_api::ProviderError;
use serde_json::Value;

/// CloudFormation's limit for a template passed inline (`TemplateBody`).
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;
/// CloudFormation's limit for a template passed by S3 URL (`TemplateURL`).
pub const S3_TEMPLATE_LIMIT: usize = 1_000_000;

/// A template parameter as declared in its `Parameters` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredParameter {
    pub name: String,
    pub has_default: bool,
    pub no_echo: bool,
}

/// The parts of a template nepho looks at.
#[derive(Debug, Clone, Default)]
pub struct TemplateInfo {
    pub parameters: Vec<DeclaredParameter>,
    /// Logical ids of the resources, to count progress.
    pub resources: Vec<String>,
    /// Each resource's declaration (type and properties), to find what an error refers to.
    pub declarations: Vec<(String, Value)>,
}

impl TemplateInfo {
    /// Parses `contents` (JSON when it looks like JSON, else YAML). `file` names it in errors.
    pub fn parse(file: &str, contents: &str) -> Result<TemplateInfo, ProviderError> {
        let document = if contents.trim_start().starts_with('{') {
            serde_json::from_str::<Value>(contents).map_err(|e| {
                invalid(format!(
                    "{file}: not valid JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ))
            })?
        } else {
            // The one positioned YAML layer: short-form tags (`!Ref X`) become their long
            // forms, aliases are budgeted, errors say FILE:LINE:COLUMN.
            nepho_yaml::parse(
                contents,
                std::path::Path::new(file),
                nepho_yaml::Dialect::Yaml12,
                nepho_yaml::Tags::CloudFormation,
            )
            .map_err(|e| invalid(e.to_string()))?
            .map_or(Value::Null, |node| node.to_value())
        };
        let Value::Object(top) = document else {
            return Err(invalid(format!(
                "{file}: a CloudFormation template must be a mapping with a Resources section"
            )));
        };
        let mut info = TemplateInfo::default();
        if let Some(Value::Object(parameters)) = top.get("Parameters") {
            for (name, declaration) in parameters {
                let field = |key: &str| declaration.as_object().and_then(|o| o.get(key));
                info.parameters.push(DeclaredParameter {
                    name: name.clone(),
                    has_default: field("Default").is_some_and(|v| !v.is_null()),
                    no_echo: field("NoEcho").is_some_and(|v| match v {
                        Value::Bool(b) => *b,
                        Value::String(s) => s.eq_ignore_ascii_case("true"),
                        _ => false,
                    }),
                });
            }
        }
        if let Some(Value::Object(resources)) = top.get("Resources") {
            info.resources = resources.keys().cloned().collect();
            info.declarations = resources
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        Ok(info)
    }

    /// Resources whose declaration mentions a name or value quoted in an error message
    /// (`undefined resource MissingBucket`, `VpcID vpc-0dead does not exist`), as
    /// `(logical id, type)`: CloudFormation endpoints that fail synchronously do not say which
    /// resource they were creating.
    pub fn resources_mentioned_in(&self, message: &str) -> Vec<(String, String)> {
        let tokens: Vec<&str> = message
            .split(|c: char| !(c.is_ascii_alphanumeric() || "-_:.".contains(c)))
            .map(|t| t.trim_end_matches(['.', ':']))
            .filter(|t| t.len() >= 4)
            .collect();
        self.declarations
            .iter()
            .filter(|(logical, declaration)| {
                let text = declaration.to_string();
                tokens.iter().any(|t| {
                    *t != logical.as_str()
                        && (text.contains(&format!("\"{t}\"")) || text.contains(&format!("\"{t}.")))
                })
            })
            .map(|(logical, declaration)| {
                let kind = declaration
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                (logical.clone(), kind)
            })
            .collect()
    }

    pub fn declares(&self, name: &str) -> bool {
        self.parameters.iter().any(|p| p.name == name)
    }
}

/// The name under which nepho and template parameters are matched: lower case, without `_`/`-`.
pub fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Which nepho parameter fills which template parameter. Holds names only, never values, so it
/// can be printed and journaled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterMapping {
    /// Template parameter name → nepho parameter name.
    pub passed: BTreeMap<String, String>,
    /// Nepho parameters the template does not declare (used only while rendering, or stray).
    pub skipped: Vec<String>,
    /// Template parameters filled by nepho itself (`PayloadURL`).
    pub supplied_by_nepho: Vec<String>,
}

/// The 1.x convention: the template receives the payload's presigned URL as this parameter.
pub const PAYLOAD_URL_PARAMETER: &str = "PayloadURL";

/// Maps nepho parameters onto the template's. A template parameter without a Default and
/// without a value is an error naming the `--set` that supplies it. `payload_supplied` is true
/// when nepho will upload a payload and pass its URL as `PayloadURL`.
pub fn map_parameters(
    template: &TemplateInfo,
    parameters: &serde_json::Map<String, Value>,
    payload_supplied: bool,
) -> Result<ParameterMapping, ProviderError> {
    let mut mapping = ParameterMapping::default();
    let mut missing = Vec::new();
    for declared in &template.parameters {
        let wanted = normalized(&declared.name);
        let source = parameters
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .find(|k| normalized(k) == wanted);
        match source {
            Some(key) => {
                mapping.passed.insert(declared.name.clone(), key.clone());
            }
            None if payload_supplied && declared.name == PAYLOAD_URL_PARAMETER => {
                mapping.supplied_by_nepho.push(declared.name.clone());
            }
            None if declared.has_default => {}
            None => missing.push(declared.name.clone()),
        }
    }
    if !missing.is_empty() {
        let sets: Vec<String> = missing
            .iter()
            .map(|name| format!("--set {}=VALUE", snake_case(name)))
            .collect();
        let plural = if missing.len() == 1 { "" } else { "s" };
        return Err(ProviderError::Invalid {
            message: format!(
                "the template requires parameter{plural} {} but no value was given (and the template has no Default)",
                missing.join(", ")
            ),
            hint: Some(format!(
                "supply {} (or put the value in a -f values file)",
                sets.join(" ")
            )),
        });
    }
    let used: Vec<&String> = mapping.passed.values().collect();
    mapping.skipped = parameters
        .keys()
        .filter(|k| !used.contains(k))
        .cloned()
        .collect();
    Ok(mapping)
}

/// `DBPassword` → `db_password`, `InstanceType` → `instance_type`: how a user would name it.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        if *c == '-' {
            out.push('_');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A parameter value as CloudFormation expects it: lists comma-joined, booleans `true`/`false`.
pub fn stringify(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(stringify).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
    }
}

/// CloudFormation's stack name rules: a letter, then letters, digits and `-`; at most 128.
pub fn validate_stack_name(name: &str) -> Result<(), ProviderError> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    if starts_with_letter && rest_ok && name.len() <= 128 {
        return Ok(());
    }
    Err(ProviderError::Invalid {
        message: format!(
            "formation name `{name}` cannot be used as a CloudFormation stack name"
        ),
        hint: Some(
            "on AWS a formation name must start with a letter, contain only letters, digits and `-`, and be at most 128 characters (e.g. `my-app-1`)".to_string(),
        ),
    })
}

fn invalid(message: String) -> ProviderError {
    ProviderError::Invalid {
        message,
        hint: Some("check the rendered pattern with `nepho scenario:render`".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const YAML: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  InstanceType:
    Type: String
    Default: t3.micro
  DBPassword:
    Type: String
    NoEcho: true
  KeyName: {Type: String, Default: ""}
Conditions:
  HasKey: !Not [!Equals [!Ref KeyName, ""]]
Resources:
  Web:
    Type: AWS::EC2::Instance
    Properties:
      InstanceType: !Ref InstanceType
      SecurityGroupIds: [!GetAtt Group.GroupId]
  Group:
    Type: AWS::EC2::SecurityGroup
Outputs:
  URL:
    Value: !Sub "http://${Web.PublicIp}/"
"#;

    #[test]
    fn reads_yaml_with_short_form_tags() {
        let info = TemplateInfo::parse("t.cf", YAML).unwrap();
        let names: Vec<_> = info.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["InstanceType", "DBPassword", "KeyName"]);
        assert!(info.parameters[0].has_default);
        assert!(!info.parameters[1].has_default && info.parameters[1].no_echo);
        assert!(
            info.parameters[2].has_default,
            "an empty Default is a default"
        );
        assert_eq!(info.resources, ["Web", "Group"]);
    }

    #[test]
    fn finds_the_resources_an_error_mentions() {
        let info = TemplateInfo::parse(
            "t.cf",
            "Resources:\n  Group:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: !GetAtt Missing.Arn\n  Net:\n    Type: AWS::EC2::Subnet\n    Properties: {VpcId: vpc-0000dead}\n",
        )
        .unwrap();
        let found = info.resources_mentioned_in(
            "Template error: instance of Fn::GetAtt references undefined resource Missing",
        );
        assert_eq!(
            found,
            [("Group".to_string(), "AWS::EC2::SecurityGroup".to_string())]
        );
        let found = info.resources_mentioned_in("VpcID vpc-0000dead does not exist.");
        assert_eq!(found, [("Net".to_string(), "AWS::EC2::Subnet".to_string())]);
        assert!(info.resources_mentioned_in("Rate exceeded").is_empty());
    }

    #[test]
    fn yaml_errors_have_positions_and_alias_bombs_stop() {
        let err = TemplateInfo::parse("t.cf", "Resources:\n  A: {Type: x}\n  A: {Type: y}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.cf:3:3"), "{err}");
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        bomb.push_str("Resources: {}\n");
        assert!(TemplateInfo::parse("t.cf", &bomb).is_err());
    }

    #[test]
    fn reads_json() {
        let info = TemplateInfo::parse(
            "t.json",
            r#"{"Parameters": {"DBPassword": {"Type": "String", "NoEcho": "true"}}, "Resources": {"A": {}}}"#,
        )
        .unwrap();
        assert_eq!(info.parameters[0].name, "DBPassword");
        assert!(info.parameters[0].no_echo);
        assert_eq!(info.resources, ["A"]);
    }

    #[test]
    fn broken_templates_are_invalid() {
        let err = TemplateInfo::parse("t.json", "{\"Resources\": ").unwrap_err();
        assert!(err.to_string().contains("t.json"), "{err}");
        let err = TemplateInfo::parse("t.cf", "Resources: [a\n b: c").unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }));
    }

    #[test]
    fn maps_parameters_by_normalized_name() {
        let info = TemplateInfo::parse("t.cf", YAML).unwrap();
        let params =
            json!({"db_password": "hunter22", "instance_type": "t3.small", "greeting": "hi"});
        let mapping = map_parameters(&info, params.as_object().unwrap(), false).unwrap();
        assert_eq!(mapping.passed["DBPassword"], "db_password");
        assert_eq!(mapping.passed["InstanceType"], "instance_type");
        assert_eq!(mapping.skipped, ["greeting"]);
    }

    #[test]
    fn missing_required_parameter_names_the_set() {
        let info = TemplateInfo::parse("t.cf", YAML).unwrap();
        let err = map_parameters(&info, json!({}).as_object().unwrap(), false).unwrap_err();
        let ProviderError::Invalid { message, hint } = err else {
            panic!("expected Invalid")
        };
        assert!(message.contains("DBPassword"), "{message}");
        assert!(hint.unwrap().contains("--set db_password="));
    }

    #[test]
    fn payload_url_is_supplied_by_nepho() {
        let info = TemplateInfo::parse(
            "cf.json",
            r#"{"Parameters": {"PayloadURL": {"Type": "String"}}, "Resources": {}}"#,
        )
        .unwrap();
        let empty = serde_json::Map::new();
        assert!(map_parameters(&info, &empty, false).is_err());
        let mapping = map_parameters(&info, &empty, true).unwrap();
        assert_eq!(mapping.supplied_by_nepho, ["PayloadURL"]);
    }

    #[test]
    fn values_are_stringified_as_cloudformation_expects() {
        assert_eq!(stringify(&json!(["a", "b", 3])), "a,b,3");
        assert_eq!(stringify(&json!(true)), "true");
        assert_eq!(stringify(&json!(2)), "2");
        assert_eq!(stringify(&json!("x")), "x");
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("DBPassword"), "db_password");
        assert_eq!(snake_case("InstanceType"), "instance_type");
        assert_eq!(snake_case("PayloadURL"), "payload_url");
        assert_eq!(snake_case("key-name"), "key_name");
    }

    #[test]
    fn stack_names() {
        assert!(validate_stack_name("agmedia").is_ok());
        assert!(validate_stack_name("my-app-2").is_ok());
        assert!(validate_stack_name("2fast").is_err());
        assert!(validate_stack_name("my_app").is_err());
        assert!(validate_stack_name(&"a".repeat(129)).is_err());
    }
}
