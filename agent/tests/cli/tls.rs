//! HTTPS with a private CA (`http.ca_bundle`) and mutual TLS
//! (`http.client_identity`), against a real TLS server: `openssl s_server
//! -WWW` on loopback, with certificates made by openssl for the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::device::{Builder, Device};

fn openssl(dir: &std::path::Path, args: &[&str]) {
    openssl_in(dir, args);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_pki(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=updater test CA",
        ],
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-out",
                &format!("{name}.key"),
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    let identity = [
        std::fs::read(dir.join("client.pem")).unwrap(),
        std::fs::read(dir.join("client.key")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("client-identity.pem"), identity).unwrap();
}

/// `openssl s_server -WWW` serving `root` on a free loopback port; killed
/// by PID when dropped.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(
        root: &std::path::Path,
        pki: &std::path::Path,
        require_client_cert: bool,
    ) -> TlsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("openssl");
        cmd.current_dir(root).args([
            "s_server",
            "-WWW",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            pki.join("server.pem").to_str().unwrap(),
            "-key",
            pki.join("server.key").to_str().unwrap(),
        ]);
        if require_client_cert {
            cmd.args([
                "-Verify",
                "1",
                "-verify_return_error",
                "-CAfile",
                pki.join("ca.pem").to_str().unwrap(),
            ]);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "openssl s_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The device's HTTP settings for this test, as a config.d fragment.
fn set_http(dev: &Device, lines: &str) {
    write(
        &dev.env.p("dev/config.d/50-tls.toml"),
        format!("[http]\nretries = 1\n{lines}\n").as_bytes(),
    );
}

#[test]
fn https_with_a_private_ca_and_mutual_tls() {
    let dev = Builder::new().build();
    let pki = dev.env.p("pki");
    make_pki(&pki);

    // Server authentication only.
    let server = TlsServer::start(&dev.env.p("rel"), &pki, false);
    let url = format!("https://127.0.0.1:{}/manifest.json", server.port);
    // Without the CA the server is not trusted: a fetch failure, nothing written.
    set_http(&dev, "");
    dev.run(&["apply", &url]).assert_fails(4, "certificate");
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
    set_http(
        &dev,
        &format!("ca_bundle = \"{}\"", pki.join("ca.pem").display()),
    );
    dev.run(&["apply", &url]).assert_ok();
    dev.assert_installed();
    drop(server);

    // The server requires a client certificate.
    std::fs::remove_file(dev.env.p("dev/slots/B.rootfs")).unwrap();
    std::fs::remove_file(dev.env.p("dev/state/state.json")).unwrap();
    let server = TlsServer::start(&dev.env.p("rel"), &pki, true);
    let url = format!("https://127.0.0.1:{}/manifest.json", server.port);
    let r = dev.run(&["apply", &url]);
    assert_eq!(r.code, 4, "without a client certificate: {}", r.stderr);
    set_http(
        &dev,
        &format!(
            "ca_bundle = \"{}\"\nclient_identity = \"{}\"",
            pki.join("ca.pem").display(),
            pki.join("client-identity.pem").display()
        ),
    );
    dev.run(&["apply", &url]).assert_ok();
    dev.assert_installed();
}
