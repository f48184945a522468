//! Certificates made at test time (rcgen), laid out as Arakoon's
//! `mkcerts.sh` lays them out: `cacert.pem`, and `NAME.pem` / `NAME.key`
//! per node or client, each `CN=NAME` with no other name (see the crate
//! docs: names are not checked).

use crate::Identity;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};

/// A certificate authority whose files live in `dir`.
pub struct TestCa {
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .unwrap_or_else(|e| panic!("certificate parameters: {e}"));
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl TestCa {
    /// A new CA called `name`; writes `dir/cacert.pem`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let mut params = params(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        let ca = TestCa {
            dir: dir.to_path_buf(),
            cert,
            key,
        };
        write(&ca.ca_cert(), &ca.cert.pem());
        ca
    }

    /// `dir/cacert.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("cacert.pem")
    }

    /// A certificate for `name` signed by this CA: writes `dir/NAME.pem`
    /// and `dir/NAME.key`.
    pub fn issue(&self, name: &str) -> Identity {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("key of {name}: {e}"));
        let cert = params(name)
            .signed_by(&key, &self.cert, &self.key)
            .unwrap_or_else(|e| panic!("certificate of {name}: {e}"));
        let identity = Identity {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        };
        write(&identity.cert, &cert.pem());
        write(&identity.key, &key.serialize_pem());
        identity
    }
}
