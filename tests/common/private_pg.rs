//! A PostgreSQL server of the test's own (`initdb` in a temp folder, `pg_ctl` on a free
//! port), for outage tests that stop and restart the database: never the machine's shared
//! server. Every command has a time limit; the server is stopped when the value is dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct PrivatePostgres {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

/// The newest installed server's programs (Debian keeps them under /usr/lib/postgresql).
fn bin_dir() -> PathBuf {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs (initdb, pg_ctl) are installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PrivatePostgres {
    /// A new cluster, started.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join("pricing-tests").join(format!("pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Self { dir, port: free_port(), bin: bin_dir() };
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&server.dir).status().unwrap();
            assert!(status.success(), "chown of the private cluster's folder");
        }
        let data = server.dir.join("data");
        server.run("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        server.start_server();
        server
    }

    fn run(&self, program: &str, args: &[&str]) {
        let mut command = Command::new("timeout");
        command.arg("120");
        if is_root() {
            command.args(["runuser", "-u", "postgres", "--"]);
        }
        let output = command.arg(self.bin.join(program)).args(args).output().expect("timeout runs");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let mut all = vec!["-D", data.to_str().unwrap(), "-w", "-t", "60"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Starts the server again on its port (after [`Self::stop`]).
    pub fn start_server(&self) {
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&["-l", log.to_str().unwrap(), "-o", &options, "start"]);
    }

    /// Stops the server (`fast`: open connections are cut, as in a restart).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// The URL of a database on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let mut command = Command::new("timeout");
        command.arg("60");
        if is_root() {
            command.args(["runuser", "-u", "postgres", "--"]);
        }
        let _ = command
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
