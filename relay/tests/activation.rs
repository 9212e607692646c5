//! Running without root: a real `imxpd` serves sockets passed in by a
//! service manager (socket activation, `LISTEN_FDS`), refuses a socket it
//! cannot place, and refuses to run as root unless allowed.

use command_fds::{CommandFdExt as _, FdMapping};
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &Path, listen: &str, allow_root: bool) -> std::path::PathBuf {
    let path = dir.join("imxpd.toml");
    std::fs::write(
        &path,
        format!(
            "[relay]\ndomains = [\"a.test\"]\nstate_dir = \"{dir}\"\nallow_root = {allow_root}\n\
             {listen}[tls]\nrequired = false\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    path
}

/// `imxpd --config CONFIG` with `sockets` as descriptors 3, 4, …
fn imxpd(config: &Path, sockets: Vec<TcpListener>, names: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imxpd"));
    command
        .arg("--config")
        .arg(config)
        .env("IMXP_LOG", "info")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !sockets.is_empty() {
        command.env("LISTEN_FDS", sockets.len().to_string());
        if let Some(names) = names {
            command.env("LISTEN_FDNAMES", names);
        }
        let mappings = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| FdMapping {
                parent_fd: socket.into(),
                child_fd: 3 + i32::try_from(i).unwrap(),
            })
            .collect();
        command.fd_mappings(mappings).unwrap();
    }
    command
}

/// Waits for the process to exit on its own (bounded), killing it if not.
fn finish(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Reads until the BEEP greeting (channel 0's first RPY) has arrived.
fn greeting(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() > deadline => panic!("connect {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut text = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&text).contains("END\r\n") {
        let n = stream.read(&mut buffer).expect("reading the greeting");
        assert!(n > 0, "closed before the greeting: {text:?}");
        text.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(text).unwrap()
}

#[test]
fn inherited_sockets_are_served_and_listen_is_not_bound() {
    let dir = tempfile::tempdir().unwrap();
    // [listen] names ports this test holds: binding them would fail, so a
    // greeting proves the inherited sockets are the ones served.
    let held_edge = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_mesh = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[listen]\nedge = [\"{}\"]\nmesh = [\"{}\"]\n",
            held_edge.local_addr().unwrap(),
            held_mesh.local_addr().unwrap()
        ),
        true,
    );
    let edge = TcpListener::bind("127.0.0.1:0").unwrap();
    let mesh = TcpListener::bind("127.0.0.1:0").unwrap();
    let (edge_port, mesh_port) = (
        edge.local_addr().unwrap().port(),
        mesh.local_addr().unwrap().port(),
    );
    let mut child = imxpd(&config, vec![edge, mesh], Some("edge:mesh"))
        .spawn()
        .unwrap();
    let edge_greeting = greeting(edge_port);
    let mesh_greeting = greeting(mesh_port);
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        edge_greeting.starts_with("RPY 0 0 . 0 ") && edge_greeting.contains("<greeting"),
        "{edge_greeting}"
    );
    assert!(mesh_greeting.contains("<greeting"), "{mesh_greeting}");
    assert!(
        log.contains("using the sockets passed by the service manager"),
        "{log}"
    );
    drop((held_edge, held_mesh));
}

#[test]
fn an_inherited_socket_that_fits_nowhere_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", true);
    let stray = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = stray.local_addr().unwrap();
    let child = imxpd(&config, vec![stray], None).spawn().unwrap();
    let output = finish(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("inherited socket #0 (unnamed, {address})"))
            && stderr.contains("FileDescriptorName=edge"),
        "{stderr}"
    );
}

#[test]
fn root_is_refused_without_allow_root() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        dir.path(),
        &format!("[listen]\nedge = [\"127.0.0.1:{port}\"]\nmesh = [\"127.0.0.1:0\"]\n"),
        false,
    );
    let child = imxpd(&config, Vec::new(), None).spawn().unwrap();
    if imxp_relay::activation::running_as_root() {
        let output = finish(child, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("refuses to run as root"), "{stderr}");
    } else {
        // Unprivileged: it runs and serves.
        let mut child = child;
        assert!(greeting(port).contains("<greeting"));
        let _ = child.kill();
        let _ = child.wait();
    }
}
