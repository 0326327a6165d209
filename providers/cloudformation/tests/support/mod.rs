//! Test support: a real `moto_server` per test (killed on drop, also on panic) and settings
//! that point the provider at it. The step driver and the recording event sink come from
//! `nepho-provider-testkit`.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nepho_provider_api::{BoxFuture, FormationSpec, ProviderKind, RenderedFile};
use nepho_provider_cloudformation::{AwsSettings, CloudFormationProvider};
pub use nepho_provider_testkit::{Outcomes, Recorder, run_plan};

pub const REGION: &str = "us-east-1";

/// The venv with moto (made by scripts/setup/python.sh, or `NEPHO_TEST_VENV`).
fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        if let Ok(v) = std::env::var("NEPHO_TEST_VENV")
            && Path::new(&v).join("bin/moto_server").exists()
        {
            return PathBuf::from(v);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup/python.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/setup/python.sh");
        assert!(out.status.success(), "scripts/setup/python.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// A moto_server on a free loopback port.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv().join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            region: Some(REGION.to_string()),
            endpoint_url: Some(self.endpoint.clone()),
            access_key_id: Some("testing".to_string()),
            secret_access_key: Some("testing".to_string()),
            ..AwsSettings::default()
        }
    }

    pub async fn provider(&self) -> CloudFormationProvider {
        nepho_provider_cloudformation::connect(&self.settings())
            .await
            .expect("connect to moto")
    }

    /// A raw CloudFormation client, to look at what exists independently of the provider.
    pub fn cfn(&self) -> aws_sdk_cloudformation::Client {
        let config = aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudformation::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_cloudformation::Client::from_conf(config)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Whether DescribeStacks knows the stack (deleted ones count as gone).
    pub async fn stack_exists(&self, name: &str) -> bool {
        match self.cfn().describe_stacks().stack_name(name).send().await {
            Ok(out) => out
                .stacks()
                .iter()
                .any(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE")),
            Err(e) => {
                let text = format!("{}", aws_sdk_cloudformation::error::DisplayErrorContext(&e));
                assert!(text.contains("does not exist"), "unexpected error: {text}");
                false
            }
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stack in DescribeStacks is what exists of a formation.
impl nepho_provider_testkit::Backend for Moto {
    fn exists<'a>(&'a self, formation: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(self.stack_exists(formation))
    }
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

pub fn spec(
    name: &str,
    template_name: &str,
    template: String,
    parameters: serde_json::Value,
) -> FormationSpec {
    FormationSpec {
        name: name.to_string(),
        cloudlet: "test-cloudlet".to_string(),
        scenario: "aws".to_string(),
        provider: ProviderKind::Aws,
        pattern: vec![RenderedFile {
            name: template_name.to_string(),
            contents: template,
        }],
        parameters: parameters.as_object().cloned().unwrap_or_default(),
        secret_keys: BTreeSet::new(),
        provisioner: None,
        payload_dir: None,
        v1: false,
        work_dir: std::env::temp_dir(),
    }
}
