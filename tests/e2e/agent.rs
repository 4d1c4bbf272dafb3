//! `ssm-agent-sim` reporting to the emulator, as the AWS CLI then sees its fleet.

use serde_json::json;
use ssm_e2e::{AgentSim, Emulator};

#[test]
fn agents_that_report_are_listed_online_by_the_cli() {
    let emu = Emulator::start(&json!({"instances": []}));
    let file = emu.dir().join("agents.json");
    std::fs::write(
        &file,
        json!({"instances": [
            {"id": "i-0bbbbbbbbbbbbbbb1", "platform_name": "Amazon Linux",
             "platform_version": "2023", "agent_version": "3.3.1142.0"},
            {"id": "mi-0bbbbbbbbbbbbbbb2", "platform_name": "Ubuntu",
             "platform_version": "22.04", "agent_version": "3.3.987.0"},
        ]})
        .to_string(),
    )
    .unwrap();

    let _agents = AgentSim::start(
        &emu,
        &["--seed", "1", "--instances-file", file.to_str().unwrap()],
        &["i-0bbbbbbbbbbbbbbb1", "mi-0bbbbbbbbbbbbbbb2"],
    );
    let out = emu.aws().ssm(&[
        "describe-instance-information",
        "--query",
        "InstanceInformationList[*].[InstanceId,AgentVersion,PlatformName,PlatformVersion,PingStatus]",
        "--output",
        "text",
    ]);

    assert_eq!(
        out.ok(),
        "i-0bbbbbbbbbbbbbbb1\t3.3.1142.0\tAmazon Linux\t2023\tOnline\n\
         mi-0bbbbbbbbbbbbbbb2\t3.3.987.0\tUbuntu\t22.04\tOnline\n"
    );
}
