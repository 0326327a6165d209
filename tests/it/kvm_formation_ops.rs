//! Day-2 operations on KVM machines, end to end on this machine's libvirt + QEMU (TCG) + tgtd:
//! offline drive growth (qcow2 and LUN) checked from inside the guest, VNC consoles reached
//! locally and through an ssh forward, and network cards plugged into running machines.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kvm::{formation, kvm_env, sh, ssh_until};

const URI: &str = "qemu:///system";

fn virtual_size(path: &Path) -> u64 {
    let info = sh(
        "qemu-img",
        &["info", "-U", "--output=json", path.to_str().unwrap()],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

/// A qcow2 data drive and a LUN data drive grow while the machine is shut off and the guest
/// sees the new sizes after a start; a running machine and a shrink are refused, unchanged.
#[test]
fn kvm_resize_drives_offline() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "rsz");
    env.run(&["create", "hello", "--name", &name]).ok();
    let qcow2 = env
        .run(&["-o", "json", "formation:add-drive", &name, "--size-gb", "1"])
        .ok()
        .json();
    assert_eq!(qcow2["drive"], "disk1", "{qcow2}");
    let lun = env
        .run(&[
            "-o",
            "json",
            "formation:add-drive",
            &name,
            "--size-gb",
            "1",
            "--storage",
            "iscsi",
        ])
        .ok()
        .json();
    assert_eq!(lun["drive"], "disk2", "{lun}");
    let volume = Path::new(qcow2["id"].as_str().unwrap()).to_path_buf();

    let refused = env
        .run(&[
            "formation:resize-drive",
            &name,
            "hello",
            "disk1",
            "--size-gb",
            "3",
        ])
        .code(6);
    assert!(
        refused.stderr.contains("shut off") && refused.stderr.contains("formation:stop"),
        "{}",
        refused.stderr
    );
    assert_eq!(virtual_size(&volume), 1 << 30, "nothing changed");

    env.run(&["formation:stop", &name, "hello"]).ok();
    let grown = env
        .run(&[
            "-o",
            "json",
            "formation:resize-drive",
            &name,
            "hello",
            "disk1",
            "--size-gb",
            "3",
        ])
        .ok()
        .json();
    assert_eq!(
        (&grown["previous_bytes"], &grown["bytes"], &grown["changed"]),
        (
            &serde_json::json!(1u64 << 30),
            &serde_json::json!(3u64 << 30),
            &serde_json::json!(true)
        ),
        "{grown}"
    );
    assert_eq!(virtual_size(&volume), 3 << 30);
    let grown_lun = env
        .run(&[
            "-o",
            "json",
            "formation:resize-drive",
            &name,
            "hello",
            "disk2",
            "--size-gb",
            "2",
        ])
        .ok()
        .json();
    assert_eq!(grown_lun["storage"], "iscsi", "{grown_lun}");

    let shrink = env
        .run(&[
            "formation:resize-drive",
            &name,
            "hello",
            "disk1",
            "--size-gb",
            "2",
        ])
        .code(4);
    assert!(shrink.stderr.contains("cannot shrink"), "{}", shrink.stderr);
    assert_eq!(
        virtual_size(&volume),
        3 << 30,
        "a refused shrink changes nothing"
    );
    env.run(&[
        "formation:resize-drive",
        &name,
        "hello",
        "disk9",
        "--size-gb",
        "2",
    ])
    .code(3);

    env.run(&["formation:start", &name, "hello"]).ok();
    let sizes = ssh_until(
        &env,
        &name,
        "cat /sys/block/vdb/size /sys/block/vdc/size",
        Duration::from_secs(120),
    );
    assert_eq!(
        sizes.split_whitespace().collect::<Vec<_>>(),
        ["6291456", "4194304"],
        "the guest sees 3 GiB on the volume and 2 GiB on the LUN"
    );
    env.run(&["destroy", &name, "--yes"]).ok();
    assert!(!volume.exists(), "destroy removes the grown volume");
    let targets = sh(
        "tgtadm",
        &["--lld", "iscsi", "--op", "show", "--mode", "target"],
    );
    assert!(!targets.contains(&format!(":{name}:")), "{targets}");
}

/// Reads the RFB protocol banner a VNC server sends first.
fn rfb_banner(address: &str) -> String {
    let addr: std::net::SocketAddr = address.parse().expect(address);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut banner = [0u8; 12];
    std::io::Read::read_exact(&mut stream, &mut banner)
        .unwrap_or_else(|e| panic!("no RFB banner from {address}: {e}"));
    String::from_utf8_lossy(&banner).into_owned()
}

/// A machine's VNC display on this host: `formation:vnc` prints a loopback-only address that
/// speaks RFB; a stopped machine has no display and the error says how to start it.
#[test]
fn kvm_vnc_display_on_the_local_host() {
    let Some(env) = kvm_env() else { return };
    let (name, _teardown) = formation(&env, "vnc");
    env.run(&["create", "hello", "--name", &name]).ok();
    let display = env.run(&["-o", "json", "formation:vnc", &name]).ok().json();
    assert_eq!(display["machine"], "hello", "{display}");
    assert_eq!(display["ssh"], serde_json::Value::Null, "{display}");
    let address = display["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("127.0.0.1:59"), "{display}");
    assert_eq!(rfb_banner(&address), "RFB 003.008\n");
    let port = address.rsplit(':').next().unwrap();
    let listening = sh("ss", &["-Hltn", &format!("sport = :{port}")]);
    assert!(
        listening.contains(&format!("127.0.0.1:{port}"))
            && !listening.contains(&format!("0.0.0.0:{port}"))
            && !listening.contains(&format!("*:{port}")),
        "the display listens on the loopback only: {listening}"
    );
    let human = env.run(&["formation:vnc", &name, "hello"]).ok();
    assert_eq!(human.stdout.trim(), address);

    env.run(&["formation:stop", &name]).ok();
    let stopped = env.run(&["formation:vnc", &name]).code(6);
    assert!(
        stopped.stderr.contains("formation:start"),
        "{}",
        stopped.stderr
    );
}

/// `nepho formation:vnc` running in the foreground, killed with `signal` when dropped.
struct Foreground(std::process::Child);

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A machine on a host reached over ssh (the loopback sshd): `formation:vnc` forwards a local
/// port to the display on the host's loopback, which speaks RFB, until it is interrupted.
#[test]
fn kvm_vnc_display_through_an_ssh_forward() {
    use std::io::BufRead;
    let Some(env) = kvm_env() else { return };
    crate::support::use_loopback_sshd_host(&env);
    let (name, _teardown) = formation(&env, "vncr");
    env.run(&["create", "hello", "--name", &name]).ok();

    let mut child = Foreground(
        env.nepho()
            .args(["-o", "json", "formation:vnc", &name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).ok();
            panic!("formation:vnc ended before printing the address: {text}\n{stderr}");
        }
        text.push_str(&line);
        if line == "}\n" {
            break;
        }
    }
    let display: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (display["host"].as_str(), display["ssh"].as_str()),
        (Some("remote"), Some("root@127.0.0.1")),
        "{display}"
    );
    assert_ne!(display["port"], display["host_port"], "{display}");
    let address = display["address"].as_str().unwrap().to_string();
    assert_eq!(
        rfb_banner(&address),
        "RFB 003.008\n",
        "the forwarded port reaches the display"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the forward stays in the foreground"
    );

    let interrupted = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "formation:vnc ignored Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "Ctrl-C ends the forward cleanly: {status}"
    );
    let addr: std::net::SocketAddr = address.parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "the forward is gone"
    );
}

/// A running machine plugged into one more network of the cluster file: the NIC appears in the
/// guest, takes the fixed address reserved for it from the pool, and carries the same
/// clean-traffic filter as the create path's; unplugged, it leaves the guest and its
/// reservation goes; destroy releases the reservation of a NIC still plugged.
#[test]
fn kvm_attach_and_detach_a_nic_live() {
    let Some(env) = kvm_env() else { return };
    crate::support::edit_cluster(
        &env,
        "networks:\n  - name: default\n",
        // Wide: a dnsmasq lease outlives its NIC (an hour) and blocks the address until then.
        "networks:\n  - name: default\n    pool: 192.168.122.150-192.168.122.229\n",
    );
    let (name, _teardown) = formation(&env, "nic");
    env.run(&["create", "hello", "--name", &name]).ok();
    let domain = format!("nepho-{name}-hello");

    let attached = env
        .run(&[
            "-o",
            "json",
            "formation:attach-nic",
            &name,
            "hello",
            "default",
        ])
        .ok()
        .json();
    assert_eq!(
        (
            attached["nic"].as_str(),
            attached["filter"].as_str(),
            attached["live"].as_bool()
        ),
        (Some("net1"), Some("clean-traffic"), Some(true)),
        "{attached}"
    );
    let ip = attached["ip"].as_str().unwrap().to_string();
    let mac = attached["mac"].as_str().unwrap().to_string();
    let last: u32 = ip
        .strip_prefix("192.168.122.")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((150..=229).contains(&last), "from the pool: {attached}");
    let live = sh("virsh", &["-c", URI, "dumpxml", &domain]);
    let interface = live
        .split("<interface ")
        .skip(1)
        .filter_map(|i| i.split("</interface>").next())
        .find(|i| i.contains(&mac))
        .unwrap_or_else(|| panic!("no interface with {mac}: {live}"));
    assert!(
        interface.contains("filter='clean-traffic'")
            && interface.contains(&format!("value='{ip}'")),
        "{interface}"
    );
    let config = sh("virsh", &["-c", URI, "dumpxml", "--inactive", &domain]);
    assert!(config.contains(&mac), "kept for the next start");
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(net.contains(&format!("ip='{ip}'")), "reserved: {net}");

    let guest = ssh_until(
        &env,
        &name,
        "for i in $(seq 20); do [ -e /sys/class/net/eth1 ] && break; sleep 1; done; \
         cat /sys/class/net/eth1/address; \
         udhcpc -i eth1 -s /usr/share/udhcpc/default.script -n -q -t 10 >/dev/null 2>&1; \
         cat /run/nepho/ip.eth1",
        Duration::from_secs(60),
    );
    assert_eq!(
        guest.split_whitespace().collect::<Vec<_>>(),
        [mac.as_str(), ip.as_str()],
        "the guest has the NIC and got its reserved address"
    );

    env.run(&["formation:detach-nic", &name, "hello", "net0"])
        .code(4);
    let detached = env
        .run(&["-o", "json", "formation:detach-nic", &name, "hello", "net1"])
        .ok()
        .json();
    assert_eq!(detached["mac"], mac.as_str(), "{detached}");
    for xml in [
        sh("virsh", &["-c", URI, "dumpxml", &domain]),
        sh("virsh", &["-c", URI, "dumpxml", "--inactive", &domain]),
    ] {
        assert!(!xml.contains(&mac), "unplugged and undefined: {xml}");
    }
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(!net.contains(&format!("ip='{ip}'")), "released: {net}");
    let gone = ssh_until(&env, &name, "ls /sys/class/net", Duration::from_secs(30));
    assert!(!gone.contains("eth1"), "the guest lost the NIC: {gone}");

    let again = env
        .run(&[
            "-o",
            "json",
            "formation:attach-nic",
            &name,
            "hello",
            "default",
        ])
        .ok()
        .json();
    let again_ip = again["ip"].as_str().unwrap().to_string();
    env.run(&["formation:detach-nic", &name, "hello", "nonet"])
        .code(3);
    env.run(&["destroy", &name, "--yes"]).ok();
    let net = sh("virsh", &["-c", URI, "net-dumpxml", "default"]);
    assert!(
        !net.contains(&format!("ip='{again_ip}'")),
        "destroy releases the attached NIC's reservation: {net}"
    );
}
