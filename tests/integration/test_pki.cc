#include "tests/integration/test_pki.h"

#include <fstream>

#include "tests/integration/child_process.h"

namespace doppel::testing {

TestPki::TestPki(std::string dir, const std::string& ca_name)
    : dir_(std::move(dir)), ca_cert_(dir_ + "/ca.pem"), ca_key_(dir_ + "/ca.key") {
  Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "3", "-subj", "/CN=" + ca_name, "-keyout", ca_key_, "-out", ca_cert_});
}

bool TestPki::Openssl(const std::vector<std::string>& args) {
  if (!error_.empty()) return false;
  std::vector<std::string> cmd = {"/usr/bin/openssl"};
  cmd.insert(cmd.end(), args.begin(), args.end());
  ChildProcess p(cmd);
  const int code = p.Wait(60000);
  if (code != 0) {
    error_ = "openssl " + args[0] + " exited " + std::to_string(code) + ": " + p.all_stderr();
    return false;
  }
  return true;
}

TestCertFiles TestPki::Issue(const std::string& name, const std::string& subject, int days) {
  TestCertFiles files{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
  const std::string csr = dir_ + "/" + name + ".csr";
  const std::string ext = dir_ + "/" + name + ".ext";
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                     << "extendedKeyUsage=serverAuth,clientAuth\n";
  Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-subj", subject, "-keyout", files.key, "-out", csr});
  // -days -N puts notAfter N days before now: an expired certificate.
  Openssl({"x509", "-req", "-in", csr, "-CA", ca_cert_, "-CAkey", ca_key_, "-CAcreateserial",
           "-days", std::to_string(days), "-extfile", ext, "-out", files.cert});
  return files;
}

}  // namespace doppel::testing
