//! A NATS server with JetStream of the test's own: `nats-server -js` on a free port with its
//! store in a temp folder, stopped (killed) when the value is dropped. Tests never touch the
//! machine's shared server, so their streams and consumers cannot meet another run's.
//! `PRICING_TEST_NATS_SERVER` names the program when it is not `nats-server` on `PATH` or in
//! `/usr/sbin` (Debian's place for it); without one the test fails and says so.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateNats {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("PRICING_TEST_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("nats-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|candidate| candidate.exists())
        .expect("nats-server is installed (Debian's nats-server package; scripts/test installs it)")
}

/// `nats-server -js` on `port` with its store in `dir`, once it accepts connections.
fn spawn(port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new(program())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not accept connections within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PrivateNats {
    /// A new server, accepting connections.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join("pricing-tests").join(format!("nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = spawn(port, &dir);
        Self { port, dir, child }
    }

    /// Stops the server (`kill -9`): clients lose it until [`PrivateNats::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on its port, with the streams it had stored.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.port, &self.dir);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
