//! A library in an S3-compatible store, against a real server: moto in
//! server mode on 127.0.0.1 (`python3 -m pip install 'moto[server]'`;
//! `.ci/run` installs it), filled with boto3 (tests/s3_fixture.py). Each
//! test skips, saying why, where moto is not installed or FUSE cannot be
//! mounted.

mod mount_support;

use std::fs;
use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use mount_support::*;
use ninja_fs::backing::Backing;
use ninja_fs::backing::s3::{LISTING_TTL, S3Bucket, S3Options, S3Url};

const BUCKET: &str = "roms";

/// Why moto cannot be run here, if it cannot (checked once).
fn moto_unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            let found = Command::new("python3")
                .args(["-c", "import moto.server, boto3"])
                .stderr(Stdio::null())
                .status();
            match found {
                Ok(status) if status.success() => None,
                _ => Some(
                    "moto is not installed (python3 -m pip install 'moto[server]')".to_string(),
                ),
            }
        })
        .clone()
}

macro_rules! require_moto_and_fuse {
    () => {
        if let Some(reason) = moto_unavailable() {
            eprintln!("skipped: {reason}");
            return;
        }
        require_fuse!();
    };
}

/// A moto server on 127.0.0.1, its request log in a file; killed on drop.
struct Moto {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl Moto {
    fn start(dir: &Path) -> Moto {
        Moto::start_with(dir, Vec::new())
    }

    fn start_with(dir: &Path, extra_env: Vec<(String, String)>) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut moto = Moto {
            child: None,
            port,
            log: dir.join(format!("moto-{port}.log")),
            extra_env,
        };
        moto.run();
        moto
    }

    /// Starts the server (again, on the same port: empty, as moto keeps
    /// its buckets in memory).
    fn run(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(
            up,
            "moto did not start: {}",
            fs::read_to_string(&self.log).unwrap()
        );
    }

    /// Kills the server (our own child, by its id).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn fixture(&self, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_fixture.py");
        let output = Command::new("python3")
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn upload(&self, bucket: &str, folder: &Path) {
        self.fixture(&["upload", bucket, folder.to_str().unwrap()]);
    }

    fn put(&self, bucket: &str, key: &str, file: &Path) {
        self.fixture(&["put", bucket, key, file.to_str().unwrap()]);
    }

    /// The request lines of the server's log (`GET /roms?list-type=2...`).
    fn requests(&self) -> Vec<String> {
        let file = fs::File::open(&self.log).unwrap();
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let start = line.find("] \"")? + 3;
                let end = start + line[start..].find('"')?;
                Some(line[start..end].to_string())
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Credentials moto takes, and nothing of the user's own AWS set-up.
fn store_env(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
}

/// `ninja-fs mount URL MNT --s3-endpoint ...`, run to its end.
fn mount_url(moto: &Moto, url: &str, dirs: &Dirs) -> Output {
    let mut command = ninja();
    store_env(&mut command)
        .arg("mount")
        .arg(url)
        .arg(&dirs.mnt)
        .arg("--s3-endpoint")
        .arg(moto.endpoint())
        .env("XDG_CACHE_HOME", dirs.cache_home())
        .output()
        .unwrap()
}

fn mount_store(moto: &Moto, url: &str, dirs: &Dirs) -> MountGuard {
    let output = mount_url(moto, url, dirs);
    assert!(
        output.status.success(),
        "mount failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    MountGuard {
        path: dirs.mnt.clone(),
    }
}

/// Every request since the `from`th is one that reads.
fn assert_only_reads(moto: &Moto, from: usize) {
    let requests = moto.requests();
    assert!(requests.len() > from, "the mount sent no request");
    for request in &requests[from..] {
        let method = request.split(' ').next().unwrap_or("");
        assert!(
            method == "GET" || method == "HEAD",
            "a request that is no read: {request}"
        );
    }
}

#[test]
fn every_view_shows_what_the_local_folder_shows() {
    require_moto_and_fuse!();
    let dirs = Dirs::new();
    let moto = Moto::start(dirs.root());
    moto.upload(BUCKET, &dirs.backing);
    let uploaded = moto.requests().len();
    let _guard = mount_store(&moto, "s3://roms", &dirs);
    assert_shows_expected(&dirs.mnt, &dirs.backing);
    // A broken patch still fails with EIO, as on a local disk.
    if let Some(broken) = scenario().broken() {
        assert_eq!(errno(fs::read(dirs.mnt.join(broken))), libc::EIO);
    }
    // Writes fail, and the store was only read: LISTs and ranged GETs.
    assert_eq!(
        errno(fs::write(dirs.mnt.join("normalized/new"), b"x")),
        libc::EROFS
    );
    assert_only_reads(&moto, uploaded);
    let requests = moto.requests();
    assert!(
        requests[uploaded..]
            .iter()
            .any(|r| r.contains("list-type=2"))
    );
}

#[test]
fn a_prefix_is_the_root_and_objects_read_as_files_on_the_command_line() {
    require_moto_and_fuse!();
    let dirs = Dirs::new();
    let moto = Moto::start(dirs.root());
    moto.upload(BUCKET, &dirs.backing);
    let uploaded = moto.requests().len();
    let _guard = mount_store(&moto, "s3://roms/snes", &dirs);
    let mut shown: Vec<String> = fs::read_dir(dirs.mnt.join("normalized"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, ["Game.sfc"]);
    // info, normalize and apply take s3:// objects as they take files.
    let run = |args: &[&str]| {
        let mut command = ninja();
        store_env(&mut command)
            .args(args)
            .arg("--s3-endpoint")
            .arg(moto.endpoint())
            .output()
            .unwrap()
    };
    let out = dirs.root().join("out.sfc");
    let made = run(&[
        "normalize",
        "s3://roms/snes/Game.smc",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(
        fs::read(&out).unwrap(),
        fs::read(dirs.mnt.join("normalized/Game.sfc")).unwrap()
    );
    let patched = dirs.root().join("patched.sfc");
    let applied = run(&[
        "apply",
        "s3://roms/snes/Game.smc",
        "s3://roms/snes/Game.ips",
        "-o",
        patched.to_str().unwrap(),
    ]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(
        fs::read(&patched).unwrap(),
        fs::read(dirs.mnt.join("patched/Game [Game.ips].sfc")).unwrap()
    );
    let info = run(&["info", "s3://roms/snes/Game.smc"]);
    let local = ninja()
        .arg("info")
        .arg(dirs.backing.join("snes/Game.smc"))
        .output()
        .unwrap();
    assert!(info.status.success(), "{}", stderr(&info));
    let body = |output: &Output| {
        let text = String::from_utf8(output.stdout.clone()).unwrap();
        text.split_once('\n').unwrap().1.to_string()
    };
    assert_eq!(body(&info), body(&local));
    assert!(String::from_utf8_lossy(&info.stdout).starts_with("s3://roms/snes/Game.smc\n"));
    let missing = run(&["info", "s3://roms/snes/Nothing.smc"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("s3://roms/snes/Nothing.smc"),
        "{}",
        stderr(&missing)
    );
    assert_only_reads(&moto, uploaded);
}

#[test]
fn changed_objects_are_seen_and_a_dead_store_gives_eio_until_it_is_back() {
    require_moto_and_fuse!();
    let dirs = Dirs::new();
    let mut moto = Moto::start(dirs.root());
    moto.upload(BUCKET, &dirs.backing);
    let _guard = mount_store(&moto, "s3://roms", &dirs);
    let rom = dirs.mnt.join("normalized/snes/Game.sfc");
    let before = fs::read(&rom).unwrap();
    assert_eq!(
        before,
        expected_readable(&dirs.backing)[Path::new("normalized/snes/Game.sfc")]
    );

    // A new version of the object: the mount shows it once its listing
    // is renewed, never the old bytes after that.
    let changed = scenario().change(&dirs.backing, 1);
    moto.upload(BUCKET, &dirs.backing);
    let want = expected_readable(&dirs.backing)[&changed].clone();
    assert!(
        wait_until(LISTING_TTL * 5, || fs::read(dirs.mnt.join(&changed)).ok()
            == Some(want.clone())),
        "the changed object was not seen"
    );

    // The store goes away: a file not read yet fails with EIO, and its
    // info/ report says why; what the mount shows stays.
    let unread = dirs.mnt.join("normalized/nes/Zelda.nes");
    assert!(unread.is_file());
    moto.kill();
    std::thread::sleep(LISTING_TTL);
    assert_eq!(errno(fs::read(&unread)), libc::EIO);
    assert!(dirs.mnt.join("normalized/snes").is_dir());
    let report = fs::read_to_string(dirs.mnt.join("info/nes/Zelda.unf.txt")).unwrap();
    assert!(report.contains("object store"), "{report}");

    // Back (moto starts empty: the same files are put again).
    moto.run();
    moto.upload(BUCKET, &dirs.backing);
    let want = expected_readable(&dirs.backing)[Path::new("normalized/nes/Zelda.nes")].clone();
    assert!(
        wait_until(LISTING_TTL * 5, || fs::read(&unread).ok()
            == Some(want.clone())),
        "the mount did not recover"
    );
}

#[test]
fn ten_thousand_objects_are_listed() {
    require_moto_and_fuse!();
    let dirs = Dirs::new();
    let moto = Moto::start(dirs.root());
    moto.fixture(&["many", "big", "many", "10000"]);
    moto.put(
        "big",
        "many/zzz last.smc",
        &dirs.backing.join("snes/Game.smc"),
    );
    let uploaded = moto.requests().len();
    ninja_fs::backing::s3::use_endpoint(&moto.endpoint());
    // SAFETY: no other thread of this test reads the environment now.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    }
    let url = S3Url::parse("s3://big/many").unwrap();
    let bucket = S3Bucket::open(&url, &S3Options::default()).unwrap();
    let listed = bucket.open_folder("").unwrap().list().unwrap();
    assert_eq!(listed.len(), 10_001);
    let _guard = mount_store(&moto, "s3://big/many", &dirs);
    let names: Vec<_> = fs::read_dir(dirs.mnt.join("normalized"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["zzz last.sfc"]);
    assert_only_reads(&moto, uploaded);
}

#[test]
fn a_missing_bucket_or_refused_credentials_fail_the_mount() {
    require_moto_and_fuse!();
    let dirs = Dirs::new();
    let moto = Moto::start(dirs.root());
    let output = mount_url(&moto, "s3://nosuchbucket/roms", &dirs);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output),
        format!(
            "ninja-fs: s3://nosuchbucket/roms: the bucket nosuchbucket does not exist at {}\n",
            moto.endpoint()
        )
    );
    assert!(!is_mounted(&dirs.mnt));
    // A server that checks signatures refuses keys it does not know.
    let strict = Moto::start_with(
        dirs.root(),
        vec![("INITIAL_NO_AUTH_ACTION_COUNT".into(), "0".into())],
    );
    let output = mount_url(&strict, "s3://roms", &dirs);
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(
        said.starts_with("ninja-fs: s3://roms: the store refused the credentials ("),
        "{said}"
    );
    assert!(!is_mounted(&dirs.mnt));
}

/// Requests that read an object (GETs that are not LISTs).
fn object_reads(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|r| r.starts_with("GET ") && !r.contains("list-type="))
        .count()
}

#[test]
fn a_second_mount_lists_with_list_requests_only() {
    require_moto_and_fuse!();
    let dirs = Dirs::new();
    let moto = Moto::start(dirs.root());
    moto.upload(BUCKET, &dirs.backing);
    let names = |mnt: &Path| {
        let mut sizes = Vec::new();
        // (patched/ sizes of patches without a target size are builds.)
        for view in ["normalized", "deinterleaved", "info"] {
            for folder in fs::read_dir(mnt.join(view)).unwrap() {
                let folder = folder.unwrap().path();
                for file in fs::read_dir(&folder).unwrap() {
                    let file = file.unwrap();
                    sizes.push((file.path(), file.metadata().unwrap().len()));
                }
            }
        }
        sizes.sort();
        sizes
    };
    let before = moto.requests().len();
    let first = {
        let _guard = mount_store(&moto, "s3://roms", &dirs);
        names(&dirs.mnt)
    };
    let first_requests = moto.requests();
    assert!(object_reads(&first_requests[before..]) > 0);
    let _guard = mount_store(&moto, "s3://roms", &dirs);
    assert_eq!(names(&dirs.mnt), first);
    let second_requests = moto.requests();
    let second = &second_requests[first_requests.len()..];
    assert!(second.iter().any(|r| r.contains("list-type=2")));
    assert_eq!(object_reads(second), 0, "{second:#?}");
}
