// Test helper: a certificate authority and the certificates it issues, made by the openssl CLI
// in a test's directory (keys mode 0600, as openssl writes them), for mTLS tests.
#pragma once

#include <string>
#include <vector>

namespace doppel::testing {

struct TestCertFiles {
  std::string cert;  // PEM
  std::string key;   // PEM, mode 0600
};

class TestPki {
 public:
  // Makes DIR/ca.pem and DIR/ca.key (a self-signed CA named `ca_name`). `dir` must exist.
  explicit TestPki(std::string dir, const std::string& ca_name = "doppel test CA");
  // "" when every openssl run so far worked; else what failed, with openssl's stderr.
  const std::string& error() const { return error_; }
  const std::string& ca() const { return ca_cert_; }

  // DIR/NAME.pem and DIR/NAME.key: a certificate for `subject` ("/CN=billing/O=Example")
  // signed by the CA, usable as a server certificate for 127.0.0.1 and localhost and as a
  // client certificate. `days` < 0: it expired that many days ago.
  TestCertFiles Issue(const std::string& name, const std::string& subject, int days = 2);

 private:
  bool Openssl(const std::vector<std::string>& args);

  std::string dir_, ca_cert_, ca_key_, error_;
};

}  // namespace doppel::testing
